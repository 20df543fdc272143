<?php

declare(strict_types=1);

namespace App\Http\Controllers;

use Illuminate\Http\JsonResponse;

/** GET /api/health: the app answers; deliberately no database access (see /api/db for that). */
class HealthController
{
    public function __invoke(): JsonResponse
    {
        return new JsonResponse([
            'status' => 'ok',
            'version' => (string) config('app.version'),
            'php' => PHP_VERSION,
            'laravel' => app()->version(),
            'host' => (string) gethostname(),
        ]);
    }
}
