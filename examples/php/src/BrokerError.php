<?php

declare(strict_types=1);

namespace ShopTokenBroker;

/**
 * The vendor answered with an error. `errorCode` is its stable code
 * (not_installed, addon_suspended, rate_limited, token_cap_reached, ...;
 * README, "Token vendor interface"); `retryAfter` the seconds it asks to
 * wait, when it says.
 */
final class BrokerError extends \RuntimeException
{
    public function __construct(
        public readonly string $errorCode,
        string $message,
        public readonly ?int $retryAfter = null,
    ) {
        parent::__construct("{$errorCode}: {$message}");
    }

    /**
     * A direct invocation's function error, `{"errorType","errorMessage"}`:
     * the wait, if any, ends the message as `(retry after N s)`.
     */
    public static function fromFunctionError(array $payload): self
    {
        $message = (string) ($payload['errorMessage'] ?? '');
        $retryAfter = preg_match('/\(retry after (\d+) s\)$/', $message, $match) === 1
            ? (int) $match[1]
            : null;

        return new self((string) ($payload['errorType'] ?? 'unknown'), $message, $retryAfter);
    }

    /**
     * The broker's HTTP error body, `{"error":{"code","message"}}`, with the
     * wait in the `Retry-After` header (whole seconds).
     */
    public static function fromHttpBody(int $status, string $body, ?string $retryAfter): self
    {
        $error = json_decode($body, true)['error'] ?? null;
        $seconds = $retryAfter !== null && ctype_digit(trim($retryAfter)) ? (int) trim($retryAfter) : null;
        if (!is_array($error) || !is_string($error['code'] ?? null)) {
            return new self('unknown', "HTTP {$status} without the broker's error body", $seconds);
        }

        return new self($error['code'], (string) ($error['message'] ?? ''), $seconds);
    }
}
