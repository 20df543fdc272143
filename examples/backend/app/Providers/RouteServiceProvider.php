<?php

declare(strict_types=1);

namespace App\Providers;

use Illuminate\Foundation\Support\Providers\RouteServiceProvider as ServiceProvider;
use Illuminate\Support\Facades\Route;

class RouteServiceProvider extends ServiceProvider
{
    public function boot(): void
    {
        $this->routes(function (): void {
            // The API under /api (the Ingress routes only this prefix to the backend).
            Route::middleware('api')->prefix('api')->group(base_path('routes/api.php'));
            // /metrics, reached through the nginx sidecar's metrics port.
            Route::middleware('metrics')->group(base_path('routes/web.php'));
        });
    }
}
