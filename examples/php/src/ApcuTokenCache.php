<?php

declare(strict_types=1);

namespace ShopTokenBroker;

/**
 * APCu's shared memory: seen by every PHP-FPM worker of one pool (not by
 * the CLI, nor by other pools or hosts). The lock is an `apcu_add` that
 * expires by itself, so a worker killed while holding it blocks nobody for
 * longer than `lockSeconds`.
 */
final class ApcuTokenCache implements TokenCache
{
    public function __construct(
        private readonly string $prefix = 'shop-token-broker:',
        private readonly int $lockSeconds = 20,
    ) {
        if (!function_exists('apcu_fetch') || !apcu_enabled()) {
            throw new \RuntimeException('APCu is not enabled');
        }
    }

    public static function available(): bool
    {
        return function_exists('apcu_enabled') && apcu_enabled();
    }

    public function read(string $key): ?array
    {
        $answer = apcu_fetch($this->prefix . $key, $found);

        return $found && is_array($answer) ? $answer : null;
    }

    public function write(string $key, array $answer): void
    {
        $ttl = max(1, (int) (strtotime((string) ($answer['expires_at'] ?? '')) ?: time()) - time());
        apcu_store($this->prefix . $key, $answer, $ttl);
    }

    public function locked(string $key, callable $critical): mixed
    {
        $lock = $this->prefix . 'lock:' . $key;
        $giveUp = microtime(true) + $this->lockSeconds;
        while (!apcu_add($lock, 1, $this->lockSeconds) && microtime(true) < $giveUp) {
            usleep(20_000);
        }
        try {
            return $critical();
        } finally {
            apcu_delete($lock);
        }
    }
}
