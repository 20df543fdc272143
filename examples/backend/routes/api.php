<?php

/*
 * API routes, all under /api (see App\Providers\RouteServiceProvider). Controllers only (no closures), so
 * `php artisan route:cache` works; the image ships the cached routes.
 */

declare(strict_types=1);

use App\Http\Controllers\DiagnosticsController;
use App\Http\Controllers\HealthController;
use App\Http\Controllers\MessageController;
use Illuminate\Support\Facades\Route;

// Liveness of the app itself: never touches the database.
Route::get('/health', HealthController::class)->name('health');

Route::get('/messages', [MessageController::class, 'index'])->name('messages.index');
Route::post('/messages', [MessageController::class, 'store'])->name('messages.store');

// Used by the e2e proofs: a database round trip, a slow request (graceful shutdown) and CPU burn (HPA).
Route::get('/db', [DiagnosticsController::class, 'database'])->name('diagnostics.db');
Route::get('/slow', [DiagnosticsController::class, 'slow'])->name('diagnostics.slow');
Route::get('/burn', [DiagnosticsController::class, 'burn'])->name('diagnostics.burn');
