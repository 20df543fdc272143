<?php

/*
 * Routes outside /api: the Prometheus exporter. The chart's nginx passes only the metrics port's
 * /metrics here (REQUEST_URI=/metrics); the Ingress routes /api alone to the backend.
 */

declare(strict_types=1);

use App\Http\Controllers\MetricsController;
use Illuminate\Support\Facades\Route;

Route::get('/metrics', MetricsController::class)->name('metrics');
