<?php

/*
 * Console routes. The app adds no commands of its own: the chart's hook Jobs run the framework's
 * `migrate` and `db:seed`.
 */

declare(strict_types=1);
