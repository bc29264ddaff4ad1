<?php

declare(strict_types=1);

// The end-to-end check of the PHP consumer, run by tests/e2e/examples.py
// against the real vendor under `cargo lambda watch` and the platform double
// (scripts/e2e.sh). Never prints a token.

require __DIR__ . '/autoload.php';

use ShopTokenBroker\BrokerError;
use ShopTokenBroker\FileTokenCache;
use ShopTokenBroker\LambdaVendor;
use ShopTokenBroker\ShopTokens;

function env(string $name): string
{
    $value = getenv($name);

    return is_string($value) && $value !== '' ? $value : throw new RuntimeException("{$name} is not set");
}

function shown(array $token): string
{
    return strlen($token['access_token']) . ' chars, sha256 ' . substr(hash('sha256', $token['access_token']), 0, 12) . '…';
}

/** The double's control API (never counted). */
function control(string $method, string $path, ?array $body = null): array
{
    [$status, , $answer] = ShopTokenBroker\Http::send($method, env('E2E_DOUBLE_URL') . '/_double' . $path,
        ['Content-Type' => 'application/json'], $body === null ? null : json_encode($body), 10);
    if ($status !== 200) {
        throw new RuntimeException("double control {$method} {$path}: {$status}");
    }

    return json_decode($answer, true);
}

function mints(string $shop): int
{
    return control('GET', "/calls/shoptet_get_access_token/{$shop}")['calls'];
}

function apiCalls(string $shop): int
{
    return control('GET', "/calls/shoptet_api/{$shop}")['calls'];
}

$vendor = new LambdaVendor(getenv('SHOP_TOKEN_FUNCTION') ?: 'token-vendor', endpoint: env('E2E_LAMBDA_ENDPOINT'));
$cacheDir = $argv[2] ?? sys_get_temp_dir() . '/shop-token-php-e2e-' . bin2hex(random_bytes(6));
$tokens = new ShopTokens($vendor, new FileTokenCache($cacheDir));
$shop = env('E2E_SHOP');

if (($argv[1] ?? '') === '--second-process') {
    // Another PHP process (another request under PHP-FPM): the same cache.
    $token = $tokens->token('shoptet', $shop);
    echo json_encode(['invocations' => $vendor->invocations, 'sha256' => hash('sha256', $token['access_token'])]), "\n";
    exit(0);
}

$failures = [];
$invoked = function () use ($vendor): int { // Invoke requests since the last call
    $count = $vendor->invocations;
    $vendor->invocations = 0;

    return $count;
};
$check = function (bool $ok, string $what) use (&$failures): void {
    echo ($ok ? 'PASS' : 'FAIL') . " php: {$what}\n";
    if (!$ok) {
        $failures[] = $what;
    }
};

$first = $tokens->token('shoptet', $shop);
$check($invoked() === 1 && $first['header_name'] === 'Shoptet-Access-Token',
    '1. cache miss: vended (' . shown($first) . ", expires_at {$first['expires_at']}), 1 invocation");

$second = json_decode((string) shell_exec(escapeshellarg(PHP_BINARY) . ' ' . escapeshellarg(__FILE__)
    . ' --second-process ' . escapeshellarg($cacheDir)), true);
$check(($second['invocations'] ?? null) === 0 && ($second['sha256'] ?? '') === hash('sha256', $first['access_token']),
    '2. a second PHP process reads the same token from the file cache, 0 invocations');

$response = $tokens->callApi('shoptet', $shop, 'GET', '/eshop');
$check($response->status === 200 && ($response->json()['data'] ?? null) !== null && $invoked() === 0,
    "3. GET {$first['api_base_url']}/eshop with the cached token: {$response->status}");

// Shoptet refuses the cached token (its tokens expire at the double): it is
// reported once as stale_token and replaced by exactly one new mint.
control('POST', "/shoptet/{$shop}/api-tokens/expire");
$mintsBefore = mints($shop);
$response = $tokens->callApi('shoptet', $shop, 'GET', '/eshop');
$renewed = $tokens->token('shoptet', $shop);
$check($response->status === 200 && $invoked() === 1 && mints($shop) === $mintsBefore + 1
    && $renewed['access_token'] !== $first['access_token'],
    '4. 401 expired-token: stale_token reported once, 1 new mint at the double (' . shown($renewed) . "), retried call {$response->status}");

// Shoptet's full bucket: 429 with Retry-After as an HTTP-date, waited out.
control('POST', '/faults/shoptet_api', ['fault' => 'rate_limited_http_date', 'retry_after_secs' => 1, 'times' => 1]);
$callsBefore = apiCalls($shop);
$started = microtime(true);
$response = $tokens->callApi('shoptet', $shop, 'GET', '/eshop');
$waited = microtime(true) - $started;
$check($response->status === 200 && apiCalls($shop) === $callsBefore + 2 && $waited >= 0.1 && $invoked() === 0,
    sprintf('5. 429 with an HTTP-date Retry-After: waited %.1f s, retried once: %d', $waited, $response->status));

control('POST', '/faults/shoptet_api', ['fault' => 'locked', 'times' => 1]);
$callsBefore = apiCalls($shop);
$response = $tokens->callApi('shoptet', $shop, 'GET', '/eshop');
$check($response->status === 200 && apiCalls($shop) === $callsBefore + 2,
    "6. 423 (Shoptet's lock): backed off, retried once: {$response->status}");

$shoprenter = getenv('E2E_SHOPRENTER_SHOP');
if (is_string($shoprenter) && $shoprenter !== '') {
    $response = $tokens->callApi('shoprenter', $shoprenter, 'GET', '/products');
    $check($response->status === 200 && str_starts_with($response->headers['content-type'] ?? '', 'application/json')
        && ($response->json()['ok'] ?? null) === true && $invoked() === 1,
        "7. Shoprenter GET /products asks for JSON and gets JSON: {$response->status}");
}

try {
    $tokens->token('shoptet', env('E2E_UNKNOWN_SHOP'));
    $check(false, '8. unknown shop: no error thrown');
} catch (BrokerError $error) {
    $check($error->errorCode === 'not_installed' && $invoked() === 1, "8. unknown shop: BrokerError {$error->errorCode}");
}

$capped = BrokerError::fromFunctionError(['errorType' => 'token_cap_reached', 'errorMessage' => 'five live tokens (retry after 7 s)']);
$http = BrokerError::fromHttpBody(429, '{"error":{"code":"rate_limited","message":"slow down"}}', '3');
$check($capped->errorCode === 'token_cap_reached' && $capped->retryAfter === 7
    && $http->errorCode === 'rate_limited' && $http->retryAfter === 3,
    "9. the vendor's errors read: function error and HTTP body, code and retry_after");

array_map('unlink', glob("{$cacheDir}/*") ?: []);
@rmdir($cacheDir);
if ($failures !== []) {
    fwrite(STDERR, 'php example: ' . count($failures) . " check(s) failed\n");
    exit(1);
}
echo "php example: all checks passed\n";
