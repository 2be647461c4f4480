#!/bin/sh
# SeaweedFS as the S3 store for one clinic: one identity (S3_ACCESS_KEY_ID / S3_SECRET_ACCESS_KEY)
# and one private bucket (S3_BUCKET), created on start if missing. Data lives in /data (a volume).
set -eu
: "${S3_ACCESS_KEY_ID:?set S3_ACCESS_KEY_ID}" "${S3_SECRET_ACCESS_KEY:?set S3_SECRET_ACCESS_KEY}" "${S3_BUCKET:?set S3_BUCKET}"
umask 077
config="$(mktemp)"
printf '{"identities":[{"name":"lesiontrack","credentials":[{"accessKey":"%s","secretKey":"%s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}\n' \
    "$S3_ACCESS_KEY_ID" "$S3_SECRET_ACCESS_KEY" > "$config"
mkdir -p /data/seaweed
weed server -dir=/data/seaweed -s3 -s3.port=8333 -s3.config="$config" -ip=127.0.0.1 -ip.bind=0.0.0.0 \
    -master.volumeSizeLimitMB="${S3_VOLUME_SIZE_LIMIT_MB:-1024}" &
server=$!
trap 'kill -TERM "$server" 2>/dev/null; wait "$server"' TERM INT
tries=0
until echo "s3.bucket.list" | weed shell -master=127.0.0.1:9333 2>/dev/null | grep -qw "$S3_BUCKET"; do
    tries=$((tries + 1))
    if [ "$tries" -gt 120 ] || ! kill -0 "$server" 2>/dev/null; then echo "s3: no bucket $S3_BUCKET" >&2; exit 1; fi
    echo "s3.bucket.create -name $S3_BUCKET" | weed shell -master=127.0.0.1:9333 >/dev/null 2>&1 || true
    sleep 1
done
echo "s3: serving bucket $S3_BUCKET on :8333"
wait "$server"
