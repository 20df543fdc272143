<?php

declare(strict_types=1);

namespace App\Exceptions;

use Illuminate\Database\QueryException;
use Illuminate\Foundation\Exceptions\Handler as ExceptionHandler;
use Illuminate\Http\JsonResponse;
use Illuminate\Http\Request;
use PDOException;
use Throwable;

/**
 * Errors are JSON for every route (this is an API: a curl without an Accept header gets JSON too), and a
 * database that is down or not migrated yet is a 503, not an opaque 500, so probes and the e2e proof can
 * tell the two apart.
 */
class Handler extends ExceptionHandler
{
    /** @var array<int, string> */
    protected $dontFlash = ['password'];

    public function register(): void
    {
        $this->renderable(function (QueryException|PDOException $e, Request $request): JsonResponse {
            return new JsonResponse([
                'message' => 'database unavailable',
                'error' => class_basename($e),
            ], 503);
        });
    }

    protected function shouldReturnJson($request, Throwable $e): bool
    {
        return true;
    }
}
