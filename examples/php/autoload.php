<?php

declare(strict_types=1);

// Debian's php-async-aws-core (SigV4 signer, AWS credential providers).
require_once 'AsyncAws/Core/autoload.php';

spl_autoload_register(static function (string $class): void {
    $prefix = 'ShopTokenBroker\\';
    if (str_starts_with($class, $prefix)) {
        $file = __DIR__ . '/src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});
