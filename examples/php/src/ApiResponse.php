<?php

declare(strict_types=1);

namespace ShopTokenBroker;

/** The platform API's answer, read whole. */
final class ApiResponse
{
    /** @param array<string, string> $headers names lowercase */
    public function __construct(
        public readonly int $status,
        public readonly array $headers,
        public readonly string $body,
    ) {
    }

    /** The body as JSON, or null when it is not JSON. */
    public function json(): ?array
    {
        $value = json_decode($this->body, true);

        return is_array($value) ? $value : null;
    }
}
