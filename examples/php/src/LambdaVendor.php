<?php

declare(strict_types=1);

namespace ShopTokenBroker;

use AsyncAws\Core\Configuration;
use AsyncAws\Core\Credentials\CacheProvider;
use AsyncAws\Core\Credentials\ChainProvider;
use AsyncAws\Core\Credentials\CredentialProvider;
use AsyncAws\Core\Request;
use AsyncAws\Core\RequestContext;
use AsyncAws\Core\Signer\SignerV4;
use AsyncAws\Core\Stream\StringStream;

/**
 * Invokes the token vendor directly (Lambda's `Invoke` API), as the Python
 * and Node examples do. Debian ships AsyncAws core but no Lambda client, so
 * this signs the one request itself with AsyncAws's SigV4 signer, with
 * credentials from its default chain (environment, web identity, profile,
 * ECS, EC2 instance), and sends it with curl.
 */
final class LambdaVendor implements Vendor
{
    /** Invoke requests sent, for a test to count. */
    public int $invocations = 0;

    private readonly Configuration $configuration;
    private readonly CredentialProvider $credentials;

    /**
     * @param string|null $endpoint Lambda's API, e.g. `http://127.0.0.1:9001`
     *                              in a test; default `https://lambda.<region>.amazonaws.com`
     */
    public function __construct(
        private readonly string $functionName,
        ?string $region = null,
        private readonly ?string $endpoint = null,
        private readonly int $timeoutSeconds = 20,
    ) {
        $options = $region === null ? [] : [Configuration::OPTION_REGION => $region];
        $this->configuration = Configuration::create($options);
        $this->credentials = new CacheProvider(ChainProvider::createDefaultChain());
    }

    public function vend(array $request): array
    {
        $region = (string) $this->configuration->get(Configuration::OPTION_REGION);
        $path = '/2015-03-31/functions/' . rawurlencode($this->functionName) . '/invocations';
        $signed = new Request(
            'POST',
            $path,
            [],
            ['content-type' => 'application/json'],
            StringStream::create(json_encode($request, JSON_THROW_ON_ERROR)),
        );
        $signed->setEndpoint(($this->endpoint ?? "https://lambda.{$region}.amazonaws.com") . $path);
        $credentials = $this->credentials->getCredentials($this->configuration)
            ?? throw new BrokerError('no_credentials', 'no AWS credentials found to invoke the token vendor');
        (new SignerV4('lambda', $region))->sign($signed, $credentials, new RequestContext());

        ++$this->invocations;
        [$status, $headers, $body] = Http::send(
            'POST',
            $signed->getEndpoint(),
            $signed->getHeaders(),
            $signed->getBody()->stringify(),
            $this->timeoutSeconds,
        );
        $payload = json_decode($body, true);
        if ($status !== 200) {
            // Lambda's own refusal (AccessDenied, TooManyRequests, ...): its
            // body is `{"Type","message"}`, the error type in a header.
            $type = $headers['x-amzn-errortype'] ?? "http_{$status}";
            throw new BrokerError(strtok($type, ':'), (string) ($payload['message'] ?? $payload['Message'] ?? ''),
                isset($headers['retry-after']) ? (int) $headers['retry-after'] : null);
        }
        if (isset($headers['x-amz-function-error'])) {
            throw BrokerError::fromFunctionError(is_array($payload) ? $payload : []);
        }
        if (!is_array($payload) || !is_string($payload['access_token'] ?? null)) {
            throw new BrokerError('unknown', 'the vendor answered something other than a token');
        }

        return $payload;
    }
}
