<?php

declare(strict_types=1);

namespace App\Http;

use Illuminate\Foundation\Http\Kernel as HttpKernel;

/**
 * HTTP middleware. The API is stateless: no session, cookie or CSRF middleware anywhere, so a request never
 * writes to storage/ and replicas need no shared state.
 */
class Kernel extends HttpKernel
{
    /** @var array<int, class-string> Run on every request, outermost first. */
    protected $middleware = [
        Middleware\RecordRequestMetrics::class,
        \Illuminate\Http\Middleware\HandleCors::class,
        \Illuminate\Foundation\Http\Middleware\ValidatePostSize::class,
        \Illuminate\Foundation\Http\Middleware\TrimStrings::class,
        \Illuminate\Foundation\Http\Middleware\ConvertEmptyStringsToNull::class,
    ];

    /** @var array<string, array<int, class-string|string>> */
    protected $middlewareGroups = [
        'api' => [
            \Illuminate\Routing\Middleware\SubstituteBindings::class,
        ],
        // /metrics: nothing but the route itself.
        'metrics' => [],
    ];

    /** @var array<string, class-string> */
    protected $middlewareAliases = [
        'throttle' => \Illuminate\Routing\Middleware\ThrottleRequests::class,
    ];
}
