<?php

declare(strict_types=1);

namespace ShopTokenBroker;

/** The broker's token vendor: one vend request in, its answer out. */
interface Vendor
{
    /**
     * `$request` is the direct-invocation payload (`platform`, `shop`,
     * `min_ttl_seconds`?, `stale_token`?); returns the vend answer
     * (`access_token`, `header_name`, `header_value`, `api_base_url`,
     * `expires_at`, ...).
     *
     * @throws BrokerError
     */
    public function vend(array $request): array;
}
