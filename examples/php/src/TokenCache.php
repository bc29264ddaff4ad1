<?php

declare(strict_types=1);

namespace ShopTokenBroker;

/**
 * Where vend answers live between requests. PHP-FPM keeps no process for
 * long, so the cache must outlive one: a file ({@see FileTokenCache}) or
 * APCu ({@see ApcuTokenCache}).
 */
interface TokenCache
{
    /** The vend answer stored under `$key`, or null. */
    public function read(string $key): ?array;

    public function write(string $key, array $answer): void;

    /**
     * Runs `$critical` holding `$key`'s lock, which every process on this
     * host sharing the cache respects: one vend per shop at a time, the
     * others then read its answer (no refresh storm against Shoptet's 5
     * live tokens).
     *
     * @template T
     * @param callable(): T $critical
     * @return T
     */
    public function locked(string $key, callable $critical): mixed;
}
