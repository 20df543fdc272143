# The restore Job's script (roles/database/tasks/restore.yml), run by bash in the operator's logical backup
# image as the Spilo UID: fetch one pg_dumpall dump from S3 and replay the sections of RESTORE_DATABASES.
# Environment: PGHOST/PGPORT/PGUSER/PGPASSWORD/PGSSLMODE (the cluster's superuser), PG_BIN, RESTORE_BUCKET,
# RESTORE_PREFIX, RESTORE_KEY (empty: the newest dump under RESTORE_PREFIX), RESTORE_DATABASES,
# RESTORE_S3_ENDPOINT, RESTORE_S3_REGION, and the AWS_* keys of the backup's environment Secret if any.
# Every line meant for the playbook starts with "restore: ".
set -euo pipefail
cd /tmp
s3_args=()
if [[ -n ${RESTORE_S3_ENDPOINT:-} ]]; then s3_args+=(--endpoint-url "$RESTORE_S3_ENDPOINT"); fi
if [[ -n ${RESTORE_S3_REGION:-} ]]; then s3_args+=(--region "$RESTORE_S3_REGION"); fi

key=${RESTORE_KEY:-}
if [[ -z $key ]]; then
  # Dumps of every incarnation of the cluster live under the prefix (the operator adds the cluster's UID).
  key=$(aws "${s3_args[@]}" s3api list-objects-v2 --bucket "$RESTORE_BUCKET" --prefix "$RESTORE_PREFIX" \
    --query 'sort_by(Contents, &LastModified)[-1].Key' --output text)
fi
if [[ -z $key || $key == None ]]; then
  echo "restore: no dump under s3://$RESTORE_BUCKET/$RESTORE_PREFIX"
  exit 1
fi
aws "${s3_args[@]}" s3 cp --only-show-errors "s3://$RESTORE_BUCKET/$key" dump.sql.gz
echo "restore: dump s3://$RESTORE_BUCKET/$key, $(stat -c %s dump.sql.gz) bytes compressed"

failed=0
for db in $RESTORE_DATABASES; do
  # pg_dumpall writes one section per database, headed "-- Database "<name>" dump"; the section runs to the
  # next header or to the end of the cluster dump.
  gunzip -c dump.sql.gz | awk -v want="-- Database \"$db\" dump" '
    /^-- Database ".*" dump$/ { on = ($0 == want) }
    /^-- PostgreSQL database cluster dump complete$/ { on = 0 }
    on { print }' > "$db.sql"
  if [[ ! -s $db.sql ]]; then
    echo "restore: $db: not in the dump"
    failed=1
    continue
  fi
  # Not ON_ERROR_STOP: the database itself and what Spilo creates in every database exist already.
  "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=0 -d "$db" -f "$db.sql" > "$db.log" 2>&1 || true
  expected=$(grep -c 'ERROR: .* already exists' "$db.log" || true)
  unexpected=$(grep 'ERROR:' "$db.log" | grep -vc 'already exists' || true)
  tables=$("$PG_BIN/psql" -X -d "$db" -tA -F= -c "
    SELECT table_name, (xpath('/row/c/text()', query_to_xml(format('SELECT count(*) AS c FROM %I.%I',
           table_schema, table_name), false, true, '')))[1]::text
      FROM information_schema.tables
     WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY 1" | paste -sd' ' -)
  echo "restore: $db: $(wc -l < "$db.sql") lines replayed, $expected already existed, $unexpected other errors; rows: ${tables:-none}"
  if [[ $unexpected -gt 0 ]]; then
    grep 'ERROR:' "$db.log" | grep -v 'already exists' | head -n 20
    failed=1
  fi
done
exit "$failed"
