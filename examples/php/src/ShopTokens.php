<?php

declare(strict_types=1);

namespace ShopTokenBroker;

/**
 * Shop API tokens from the broker's token vendor, cached per shop across
 * requests and processes, and calls to the shop's API with them:
 *
 *     $tokens = new ShopTokens(new LambdaVendor('<TokenVendorFunctionName>'), ShopTokens::defaultCache());
 *     $eshop = $tokens->callApi('shoptet', '222651', 'GET', '/eshop')->json();
 */
final class ShopTokens
{
    /** Shoptet holds a lock up to 5 s: 0.25 s, doubled per 423, at most 2 s. */
    private const FIRST_LOCK_BACKOFF = 0.25;
    private const MAX_LOCK_BACKOFF = 2.0;
    /** A 429 without Retry-After (Shoprenter documents none): its 1 s window. */
    private const UNSAID_RETRY_AFTER = 1.0;

    /** @var callable(float): void */
    private $sleep;

    /**
     * @param int $marginSeconds a cached token is used until this long before its `expires_at`
     * @param float $maxWaitSeconds how long one call may wait on 429s and 423s in all
     */
    public function __construct(
        private readonly Vendor $vendor,
        private readonly TokenCache $cache,
        private readonly int $marginSeconds = 60,
        private readonly float $maxWaitSeconds = 10.0,
        ?callable $sleep = null,
    ) {
        $this->sleep = $sleep ?? static fn (float $seconds) => usleep((int) ($seconds * 1e6));
    }

    /** APCu when the SAPI has it enabled, else files in the system's temp directory. */
    public static function defaultCache(): TokenCache
    {
        return ApcuTokenCache::available()
            ? new ApcuTokenCache()
            : new FileTokenCache(sys_get_temp_dir() . '/shop-token-broker-' . (function_exists('posix_geteuid') ? posix_geteuid() : get_current_user()));
    }

    /**
     * The vend answer for the shop, from the cache while it has more than
     * the margin (and `$minTtlSeconds`) left, else from the vendor.
     *
     * @throws BrokerError
     */
    public function token(string $platform, string $shop, int $minTtlSeconds = 0): array
    {
        $key = "{$platform}/{$shop}";
        $fresh = fn (?array $answer): bool => $answer !== null
            && self::secondsLeft($answer) > max($this->marginSeconds, $minTtlSeconds);
        $cached = $this->cache->read($key);
        if ($fresh($cached)) {
            return $cached;
        }

        return $this->cache->locked($key, function () use ($key, $fresh, $platform, $shop, $minTtlSeconds): array {
            // Another process may have vended while this one waited for the lock.
            $cached = $this->cache->read($key);
            if ($fresh($cached)) {
                return $cached;
            }

            return $this->vend($key, ['platform' => $platform, 'shop' => $shop]
                + ($minTtlSeconds > 0 ? ['min_ttl_seconds' => $minTtlSeconds] : []));
        });
    }

    /**
     * Reports a token the platform refused; returns its replacement. When
     * another process already replaced it, that replacement, without a vend.
     *
     * @throws BrokerError
     */
    public function refresh(string $platform, string $shop, string $refusedToken): array
    {
        $key = "{$platform}/{$shop}";

        return $this->cache->locked($key, function () use ($key, $platform, $shop, $refusedToken): array {
            $cached = $this->cache->read($key);
            if ($cached !== null && !hash_equals($cached['access_token'], $refusedToken)
                && self::secondsLeft($cached) > $this->marginSeconds) {
                return $cached;
            }

            return $this->vend($key, ['platform' => $platform, 'shop' => $shop, 'stale_token' => $refusedToken]);
        });
    }

    /**
     * Calls the shop's API (`$path` relative to `api_base_url`, e.g. `/eshop`):
     * - a token the platform refuses (Shoptet 401 `expired-token` /
     *   `invalid-token`, any Shoprenter 401) is reported once and the call
     *   retried with its replacement; Shoptet's 403 is returned as it is;
     * - 429 waits `Retry-After` (an HTTP-date, as Shoptet sends it, or
     *   seconds) and 423 (Shoptet's lock on the same write) a short back-off,
     *   then retries, while the waits stay within `maxWaitSeconds`; past
     *   that the 429 or 423 is returned.
     *
     * @throws BrokerError
     */
    public function callApi(string $platform, string $shop, string $method, string $path, ?array $body = null): ApiResponse
    {
        $token = $this->token($platform, $shop);
        $reported = false;
        $waited = 0.0;
        $lockBackoff = self::FIRST_LOCK_BACKOFF;
        while (true) {
            $response = self::send($token, $method, $path, $body);
            if (!$reported && self::refusesToken($platform, $response)) {
                $token = $this->refresh($platform, $shop, $token['access_token']);
                $reported = true;
                continue;
            }
            $wait = match ($response->status) {
                429 => self::retryAfter($response->headers['retry-after'] ?? null) ?? self::UNSAID_RETRY_AFTER,
                423 => $lockBackoff,
                default => null,
            };
            if ($wait === null || $waited + $wait > $this->maxWaitSeconds) {
                return $response;
            }
            if ($response->status === 423) {
                $lockBackoff = min($lockBackoff * 2, self::MAX_LOCK_BACKOFF);
            }
            ($this->sleep)($wait);
            $waited += $wait;
        }
    }

    /** One request to the platform's API with the token's header. */
    public static function send(array $token, string $method, string $path, ?array $body = null): ApiResponse
    {
        $headers = [$token['header_name'] => $token['header_value'], 'Content-Type' => 'application/json'];
        if (($token['platform'] ?? null) === 'shoprenter') {
            $headers['Accept'] = 'application/json'; // Shoprenter answers XML without it
        }
        [$status, $received, $answer] = Http::send(
            $method,
            $token['api_base_url'] . $path,
            $headers,
            $body === null ? null : json_encode($body, JSON_THROW_ON_ERROR),
            30,
        );

        return new ApiResponse($status, $received, $answer);
    }

    /**
     * Seconds to wait for a `Retry-After` of seconds or an HTTP-date (at
     * least 0.1, so a date already past makes no busy loop); null if absent
     * or unreadable.
     */
    public static function retryAfter(?string $value, ?int $now = null): ?float
    {
        $value = trim((string) $value);
        if ($value === '') {
            return null;
        }
        if (ctype_digit($value)) {
            return max(0.1, (float) $value);
        }
        $at = \DateTimeImmutable::createFromFormat(\DATE_RFC7231, $value, new \DateTimeZone('UTC'));

        return $at === false ? null : max(0.1, (float) ($at->getTimestamp() - ($now ?? time())));
    }

    private function vend(string $key, array $request): array
    {
        $answer = $this->vendor->vend($request);
        $this->cache->write($key, $answer);

        return $answer;
    }

    private static function secondsLeft(array $answer): int
    {
        $expiresAt = strtotime((string) ($answer['expires_at'] ?? ''));

        return $expiresAt === false ? 0 : $expiresAt - time();
    }

    private static function refusesToken(string $platform, ApiResponse $response): bool
    {
        if ($response->status !== 401) {
            return false;
        }
        if ($platform === 'shoprenter') {
            return true;
        }
        foreach ($response->json()['errors'] ?? [] as $error) {
            if (in_array($error['errorCode'] ?? null, ['expired-token', 'invalid-token'], true)) {
                return true;
            }
        }

        return false;
    }
}
