<?php

declare(strict_types=1);

namespace ShopTokenBroker;

use Shoptet\Api\Sdk\Php\Authorization\Token\PublicApiToken;
use Shoptet\Api\Sdk\Php\Authorization\Token\Token;
use Shoptet\Api\Sdk\Php\Authorization\Token\TokenStorage;
use Shoptet\Api\Sdk\Php\Exception\RuntimeException;

/**
 * The broker as the official `shoptet/api-sdk`'s `TokenStorage`: the token
 * id is the e-shop's id, and loading it vends (or serves from the cache)
 * that e-shop's API access token. Written against the interface as the SDK
 * publishes it (`loadToken(string $tokenId): Token`,
 * `storeToken(Token $token): void`, `PublicApiToken($tokenId,
 * $accessToken, ?DateTime $expireAt)`); Packagist is out of reach here, so
 * this file is only syntax-checked, never run against the SDK.
 */
final class ShoptetSdkTokenStorage implements TokenStorage
{
    public function __construct(private readonly ShopTokens $tokens, private readonly int $marginSeconds = 60)
    {
    }

    public function loadToken(string $tokenId): Token
    {
        $answer = $this->tokens->token('shoptet', $tokenId);
        // The SDK refuses an expired token: expire it here a margin early,
        // as the broker's own cache does.
        $expireAt = (new \DateTime($answer['expires_at']))->modify("-{$this->marginSeconds} seconds");

        return new PublicApiToken($tokenId, $answer['access_token'], $expireAt);
    }

    public function storeToken(Token $token): void
    {
        // The broker holds the OAuth access token and mints API tokens; the
        // SDK's install callback and createFreshPublicApiToken are not used.
        throw new RuntimeException('tokens are stored by the shop-token-broker, not through the SDK');
    }
}
