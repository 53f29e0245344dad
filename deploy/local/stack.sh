#!/usr/bin/env bash
# The local stack: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok and a KRaft Kafka, plus the
# servers sources are fetched from: distribution's OCI registry (plain HTTP, and a second one with TLS and basic
# auth), SeaweedFS's S3 gateway and Azurite's blob service. All on loopback, all real. State lives in .stack/
# (env, kubeconfig, logs, pids, data).
#   stack.sh up | down | status            the whole stack
#   stack.sh stop|start|restart COMPONENT  one component (tests restart kube-apiserver and kafka)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
STACK=${STACK_DIR:-$root/.stack}
PY=${PYTHON:-$root/.venv/bin/python}
ETCD_PORT=${ETCD_PORT:-23790}
APISERVER_PORT=${APISERVER_PORT:-26443}
KAFKA_PORT=${KAFKA_PORT:-29092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-29093}
KWOK_NODES=${KWOK_NODES:-3}
OCI_REGISTRY_PORT=${OCI_REGISTRY_PORT:-25000}
OCI_REGISTRY_TLS_PORT=${OCI_REGISTRY_TLS_PORT:-25443}
# SeaweedFS takes eight ports from S3_PORT on: S3, then master, volume and filer (HTTP and gRPC each) and S3's gRPC.
S3_PORT=${S3_PORT:-28333}
AZURITE_BLOB_PORT=${AZURITE_BLOB_PORT:-20010}
COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok kafka oci-registry oci-registry-tls seaweedfs azurite)
# spec.sts: the LDAP directory and the STS gateway (after seaweedfs: it joins that filer).
COMPONENTS+=(ldap seaweedfs-sts)
# Servers that depend on nothing else: up launches them first and waits for them last, so their start-up
# overlaps the cluster's instead of adding to it.
SERVERS=(oci-registry oci-registry-tls seaweedfs azurite)
# provider: gcp - fake-gcs-server, Google Cloud Storage's JSON API (a server like the others: no dependencies).
COMPONENTS+=(fake-gcs-server)
SERVERS+=(fake-gcs-server)
SERVERS+=(ldap seaweedfs-sts)
# Azurite's development account: its name and key are published by Microsoft (not a secret).
AZURITE_ACCOUNT=devstoreaccount1
AZURITE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

eval "$("$here/build.sh" --print)"
log() { printf '[stack] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

pidfile() { echo "$STACK/run/$1.pid"; }
running() { local p; p=$(cat "$(pidfile "$1")" 2>/dev/null) && kill -0 "$p" 2>/dev/null; }

# Start $1 detached from our process group (so make's exit does not take it down), logging to .stack/logs.
spawn() {
  local name=$1; shift
  running "$name" && return 0
  setsid "$@" >>"$STACK/logs/$name.log" 2>&1 </dev/null &
  echo $! >"$(pidfile "$name")"
}

# wait_for NAME SECONDS CMD...: poll CMD until it succeeds; on failure name the component and its log.
wait_for() {
  local name=$1 secs=$2; shift 2
  local deadline=$((SECONDS + secs))
  until "$@" >/dev/null 2>&1; do
    running "$name" || die "$name exited during start-up; see $STACK/logs/$name.log: $(tail -n 5 "$STACK/logs/$name.log" 2>/dev/null)"
    ((SECONDS < deadline)) || die "$name not ready after ${secs}s; see $STACK/logs/$name.log"
    sleep 0.3
  done
}

kubectl_() { "$KUBECTL" --kubeconfig "$STACK/kubeconfig" "$@"; }

pki() {
  local d=$STACK/pki
  [[ -f $d/.complete ]] && return 0
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=gitops-mesh-local-ca" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout "$d/apiserver.key" \
    -out "$d/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n' >"$d/san.ext"
  openssl x509 -req -in "$d/apiserver.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 3650 \
    -extfile "$d/san.ext" -out "$d/apiserver.crt" 2>/dev/null
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  echo "$(openssl rand -hex 24),admin,admin,system:masters" >"$d/tokens.csv"
  touch "$d/.complete"
}

# The TLS registry's server certificate (signed by the stack's CA) and the local credentials of the servers:
# made once per state directory, apart from pki's stamp so a stack made before them gains them.
server_secrets() {
  local d=$STACK/pki
  if [[ ! -f $d/registry.crt ]]; then
    openssl req -newkey rsa:2048 -nodes -subj "/CN=oci-registry" -keyout "$d/registry.key" \
      -out "$d/registry.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$d/registry-san.ext"
    openssl x509 -req -in "$d/registry.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 3650 \
      -extfile "$d/registry-san.ext" -out "$d/registry.crt.tmp" 2>/dev/null
    mv "$d/registry.crt.tmp" "$d/registry.crt"
  fi
  # Random per stack; the password goes to htpasswd on stdin, never on a command line.
  if [[ ! -s $d/registry-password ]]; then
    (umask 077 && openssl rand -hex 16 >"$d/registry-password.tmp") && mv "$d/registry-password.tmp" "$d/registry-password"
  fi
  if [[ ! -s $d/registry.htpasswd ]]; then
    htpasswd -niB mesh <"$d/registry-password" >"$d/registry.htpasswd.tmp" \
      || die "htpasswd (apache2-utils) failed; run 'make system-packages'"
    mv "$d/registry.htpasswd.tmp" "$d/registry.htpasswd"
  fi
  if [[ ! -s $d/s3.json ]]; then
    (umask 077 && {
      printf '{"identities": [{"name": "mesh", "credentials": [{"accessKey": "%s", "secretKey": "%s"}],' \
        "mesh$(openssl rand -hex 8)" "$(openssl rand -hex 20)"
      printf ' "actions": ["Admin", "Read", "List", "Tagging", "Write"]}]}\n'
    } >"$d/s3.json.tmp") && mv "$d/s3.json.tmp" "$d/s3.json"
  fi
}

s3_key() { "$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["identities"][0]["credentials"][0][sys.argv[2]])' "$STACK/pki/s3.json" "$1"; }

write_kubeconfig() {
  local token; token=$(cut -d, -f1 "$STACK/pki/tokens.csv")
  cat >"$STACK/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority: $STACK/pki/ca.crt
users:
- name: admin
  user:
    token: $token
contexts:
- name: local
  context: {cluster: local, user: admin}
current-context: local
KC
  chmod 600 "$STACK/kubeconfig"
}

write_env() {
  cat >"$STACK/env" <<ENV
export KUBECONFIG=$STACK/kubeconfig
export KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT
export KUBECTL=$KUBECTL
export HELM=$HELM
export KUSTOMIZE=$KUSTOMIZE
export SOPS=$SOPS
export ETCD_ENDPOINT=http://127.0.0.1:$ETCD_PORT
export STACK_DIR=$STACK
export OCI_REGISTRY=127.0.0.1:$OCI_REGISTRY_PORT
export OCI_REGISTRY_TLS=127.0.0.1:$OCI_REGISTRY_TLS_PORT
export OCI_REGISTRY_TLS_CA=$STACK/pki/ca.crt
export OCI_REGISTRY_TLS_USERNAME=mesh
export OCI_REGISTRY_TLS_PASSWORD=$(cat "$STACK/pki/registry-password")
export S3_ENDPOINT=http://127.0.0.1:$S3_PORT
export S3_ACCESS_KEY=$(s3_key accessKey)
export S3_SECRET_KEY=$(s3_key secretKey)
export AZURE_BLOB_ENDPOINT=http://127.0.0.1:$AZURITE_BLOB_PORT/$AZURITE_ACCOUNT
export AZURE_ACCOUNT_NAME=$AZURITE_ACCOUNT
export AZURE_ACCOUNT_KEY=$AZURITE_KEY
export GCS_ENDPOINT=http://127.0.0.1:$GCS_PORT
ENV
  sts_env >>"$STACK/env"
  chmod 600 "$STACK/env"
}

start_etcd() {
  spawn etcd "$ETCD" --name default --data-dir "$STACK/data/etcd" --unsafe-no-fsync \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 10))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 10))" \
    --initial-cluster "default=http://127.0.0.1:$((ETCD_PORT + 10))" --listen-metrics-urls ""
  wait_for etcd 60 curl -sf "http://127.0.0.1:$ETCD_PORT/health"
}

start_apiserver() {
  local d=$STACK/pki
  spawn kube-apiserver "$KUBE_APISERVER" --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$APISERVER_PORT" \
    --cert-dir "$STACK/data/apiserver-certs" --tls-cert-file "$d/apiserver.crt" --tls-private-key-file "$d/apiserver.key" \
    --client-ca-file "$d/ca.crt" --token-auth-file "$d/tokens.csv" --authorization-mode RBAC \
    --service-cluster-ip-range 10.96.0.0/16 --allow-privileged=true \
    --disable-admission-plugins ServiceAccount \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$d/sa.pub" --service-account-signing-key-file "$d/sa.key" \
    --profiling=false --enable-priority-and-fairness=false \
    --watch-cache-sizes configmaps#0
  # ConfigMap watches go straight to etcd (no watch cache): a fresh cache would serve a stale
  # resourceVersion for minutes, so tests of the 410 Gone path compact etcd and get a real 410 at once.
  wait_for kube-apiserver 120 kubectl_ get --raw /readyz
}

start_controller_manager() {
  spawn kube-controller-manager "$KUBE_CONTROLLER_MANAGER" --kubeconfig "$STACK/kubeconfig" \
    --service-account-private-key-file "$STACK/pki/sa.key" --root-ca-file "$STACK/pki/ca.crt" \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port 0 --controllers '*' \
    --concurrent-deployment-syncs 10 --concurrent-replicaset-syncs 10 --kube-api-qps 200 --kube-api-burst 400
  wait_for kube-controller-manager 60 kubectl_ get serviceaccount default -n default
}

start_scheduler() {
  spawn kube-scheduler "$KUBE_SCHEDULER" --kubeconfig "$STACK/kubeconfig" --authentication-kubeconfig "$STACK/kubeconfig" \
    --authorization-kubeconfig "$STACK/kubeconfig" --leader-elect=false --bind-address 127.0.0.1 --secure-port 0 \
    --kube-api-qps 200 --kube-api-burst 400
  sleep 0.5
  running kube-scheduler || die "kube-scheduler exited; see $STACK/logs/kube-scheduler.log"
}

start_kwok() {
  spawn kwok "$KWOK" --kubeconfig "$STACK/kubeconfig" --config "$KWOK_STAGES" --manage-all-nodes=false \
    --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake --manage-nodes-with-label-selector= \
    --cidr 10.244.0.1/16 --node-ip 10.240.0.1 --node-lease-duration-seconds 40 --server-address 127.0.0.1:0
  local i
  for ((i = 0; i < KWOK_NODES; i++)); do
    cat <<NODE
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {type: kwok, kubernetes.io/hostname: kwok-node-$i, kubernetes.io/os: linux, kubernetes.io/arch: amd64}
status:
  allocatable: {cpu: "32", memory: 256Gi, pods: "250"}
  capacity: {cpu: "32", memory: 256Gi, pods: "250"}
---
NODE
  done | kubectl_ apply -f - >/dev/null
  wait_for kwok 60 kubectl_ wait --for condition=Ready node --all --timeout 1s
}

kafka_props() {
  local d=$STACK/kafka
  mkdir -p "$d"
  cat >"$d/server.properties" <<P
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT
controller.listener.names=CONTROLLER
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT
log.dirs=$STACK/data/kafka
num.partitions=3
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.flush.interval.messages=9223372036854775807
P
  cat >"$d/log4j2.properties" <<P
rootLogger.level=WARN
rootLogger.appenderRef.stdout.ref=STDOUT
appender.stdout.type=Console
appender.stdout.name=STDOUT
appender.stdout.layout.type=PatternLayout
appender.stdout.layout.pattern=[%d] %p %m (%c)%n
logger.kafka.name=kafka
logger.kafka.level=INFO
P
}

java_kafka() { java -Xmx512m -Xms128m -XX:+UseSerialGC -Dlog4j2.configurationFile="$STACK/kafka/log4j2.properties" -cp "$KAFKA_LIBS/*" "$@"; }

start_kafka() {
  kafka_props
  if [[ ! -f $STACK/data/kafka/meta.properties ]]; then
    local id; id=$("$PY" -c 'import base64,uuid;print(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))')
    java_kafka kafka.tools.StorageTool format -t "$id" -c "$STACK/kafka/server.properties" >>"$STACK/logs/kafka.log" 2>&1 \
      || die "formatting Kafka storage failed; see $STACK/logs/kafka.log"
  fi
  spawn kafka java -Xmx512m -Xms128m -XX:+UseSerialGC -Dlog4j2.configurationFile="$STACK/kafka/log4j2.properties" \
    -cp "$KAFKA_LIBS/*" kafka.Kafka "$STACK/kafka/server.properties"
  wait_for kafka 90 "$PY" -m gitops_mesh.bus.topics --bootstrap "127.0.0.1:$KAFKA_PORT" --check
}

# distribution's registry; $1 the component, $2 its port, $3.. extra config lines under the top level.
registry_config() {
  local name=$1 port=$2; shift 2
  mkdir -p "$STACK/$name"
  {
    cat <<C
version: 0.1
log: {level: warn, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $STACK/data/$name}
  delete: {enabled: true}
  maintenance: {uploadpurging: {enabled: false}}
C
    printf '%s\n' "$@"
  } >"$STACK/$name/config.yml"
  echo "$STACK/$name/config.yml"
}

# No OpenTelemetry exporter: there is no collector, and the default one would retry one for ever.
launch_oci_registry() {
  local c; c=$(registry_config oci-registry "$OCI_REGISTRY_PORT" "http: {addr: 127.0.0.1:$OCI_REGISTRY_PORT}")
  OTEL_TRACES_EXPORTER=none spawn oci-registry "$OCI_REGISTRY_BIN" serve "$c"
}
ready_oci_registry() { wait_for oci-registry 30 curl -sf "http://127.0.0.1:$OCI_REGISTRY_PORT/v2/"; }

launch_oci_registry_tls() {
  local d=$STACK/pki c
  c=$(registry_config oci-registry-tls "$OCI_REGISTRY_TLS_PORT" \
    "http: {addr: 127.0.0.1:$OCI_REGISTRY_TLS_PORT, tls: {certificate: $d/registry.crt, key: $d/registry.key}}" \
    "auth: {htpasswd: {realm: gitops-mesh, path: $d/registry.htpasswd}}")
  OTEL_TRACES_EXPORTER=none spawn oci-registry-tls "$OCI_REGISTRY_BIN" serve "$c"
}
# Up means TLS with our CA and an auth challenge to an anonymous client.
registry_challenges() {
  [[ $(curl -s -o /dev/null -w '%{http_code}' --cacert "$STACK/pki/ca.crt" "https://127.0.0.1:$OCI_REGISTRY_TLS_PORT/v2/") == 401 ]]
}
ready_oci_registry_tls() { wait_for oci-registry-tls 30 registry_challenges; }

# SeaweedFS as one process (master, volume, filer, S3 gateway), identities from pki/s3.json. One volume grown at a
# time and 64 MiB volumes with no fixed count, so many small buckets (one per test) never run out of volume slots.
launch_seaweedfs() {
  local p=$S3_PORT
  mkdir -p "$STACK/data/seaweedfs"
  WEED_MASTER_VOLUME_GROWTH_COPY_1=1 spawn seaweedfs "$WEED" -logtostderr server -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -dir="$STACK/data/seaweedfs" -master.telemetry=false -master.volumeSizeLimitMB=64 -volume.max=0 -volume.preStopSeconds=0 \
    -master.port=$((p + 1)) -master.port.grpc=$((p + 2)) -volume.port=$((p + 3)) -volume.port.grpc=$((p + 4)) \
    -filer -filer.port=$((p + 5)) -filer.port.grpc=$((p + 6)) -filer.localSocket="$STACK/run/seaweedfs-filer.sock" \
    -s3 -s3.port="$p" -s3.port.grpc=$((p + 7)) -s3.port.iceberg=0 -s3.port.lance=0 -s3.config="$STACK/pki/s3.json" \
    -s3.localSocket="$STACK/run/seaweedfs-s3.sock"
}
# Up means a signed ListBuckets succeeds (gateway, filer and identities loaded) and the master has a volume server
# to write to. The keys reach curl in a config on stdin, not argv.
s3_answers() {
  printf 'user = "%s:%s"\n' "$(s3_key accessKey)" "$(s3_key secretKey)" \
    | curl -sf -o /dev/null -K - --aws-sigv4 "aws:amz:us-east-1:s3" "http://127.0.0.1:$S3_PORT/" \
    && curl -sf "http://127.0.0.1:$((S3_PORT + 1))/dir/status" | grep -q '"DataNodes"'
}
ready_seaweedfs() { wait_for seaweedfs 60 s3_answers; }

launch_azurite() {
  mkdir -p "$STACK/data/azurite"
  spawn azurite node "$AZURITE_BLOB" --blobHost 127.0.0.1 --blobPort "$AZURITE_BLOB_PORT" \
    --location "$STACK/data/azurite" --skipApiVersionCheck --disableProductStyleUrl --disableTelemetry --silent
}
# Up means the blob service answers for the dev account (403 to an unsigned request).
azurite_answers() {
  [[ $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$AZURITE_BLOB_PORT/$AZURITE_ACCOUNT?comp=list") == 403 ]]
}
ready_azurite() { wait_for azurite 30 azurite_answers; }

# fake-gcs-server: GCS's JSON API over plain HTTP on loopback, objects kept under .stack/data. It takes any bearer
# token (or none): Buckets authenticate with a service account key whose token_uri the tests serve themselves.
GCS_PORT=${GCS_PORT:-24080}
launch_fake_gcs_server() {
  mkdir -p "$STACK/data/fake-gcs-server"
  spawn fake-gcs-server "$FAKE_GCS_SERVER" -scheme http -host 127.0.0.1 -port "$GCS_PORT" -backend filesystem \
    -filesystem-root "$STACK/data/fake-gcs-server" -public-host "127.0.0.1:$GCS_PORT" \
    -external-url "http://127.0.0.1:$GCS_PORT" -log-level warn
}
# Up means the JSON API answers a bucket listing.
gcs_answers() { curl -sf -o /dev/null "http://127.0.0.1:$GCS_PORT/storage/v1/b?project=gitops-mesh"; }
ready_fake_gcs_server() { wait_for fake-gcs-server 30 gcs_answers; }

# spec.sts (ldap) for Buckets: a small LDAP directory (deploy/local/ldap-server, one user) and a second SeaweedFS S3
# gateway on the same filer whose advanced IAM config (pki/s3-sts.json) has STS with that directory as its LDAP
# provider and a read-only role the user may assume. The first gateway and its access keys are left as they are; the
# temporary credentials are valid on this gateway, which serves the same buckets.
LDAP_PORT=${LDAP_PORT:-20389}
S3_STS_PORT=${S3_STS_PORT:-28343}
S3_STS_ROLE=arn:aws:iam::000000000000:role/BucketReader
sts_secrets() {
  local d=$STACK/pki
  if [[ ! -s $d/ldap-users ]]; then
    (umask 077 && printf 'flux:%s\n' "$(openssl rand -hex 16)" >"$d/ldap-users.tmp") && mv "$d/ldap-users.tmp" "$d/ldap-users"
  fi
  # The STS gateway also answers over TLS (its own certificate from the stack's CA) for spec.sts.certSecretRef.
  if [[ ! -f $d/sts.crt ]]; then
    openssl req -newkey rsa:2048 -nodes -subj "/CN=seaweedfs-sts" -keyout "$d/sts.key" -out "$d/sts.csr" 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >"$d/sts-san.ext"
    openssl x509 -req -in "$d/sts.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 3650 \
      -extfile "$d/sts-san.ext" -out "$d/sts.crt.tmp" 2>/dev/null
    mv "$d/sts.crt.tmp" "$d/sts.crt"
  fi
  if [[ ! -s $d/s3-sts.json ]]; then
    (umask 077 && cat >"$d/s3-sts.json.tmp" <<J
{
  "sts": {"tokenDuration": "1h", "maxSessionLength": "12h", "issuer": "gitops-mesh-sts",
          "signingKey": "$(openssl rand -base64 32)"},
  "providers": [{"name": "ldap", "type": "ldap", "enabled": true,
                 "config": {"server": "ldap://127.0.0.1:$LDAP_PORT", "baseDN": "ou=people,dc=gitops-mesh,dc=local",
                            "userFilter": "(uid=%s)", "connectionTimeout": "5s"}}],
  "policy": {"defaultEffect": "Deny"},
  "roles": [{"roleName": "BucketReader", "roleArn": "$S3_STS_ROLE",
             "trustPolicy": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
               "Principal": {"AWS": "arn:aws:iam::000000000000:user/flux"},
               "Action": ["sts:AssumeRole"]}]},
             "attachedPolicies": ["BucketRead"]}],
  "policies": [{"name": "BucketRead", "document": {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
    "Action": ["s3:GetObject", "s3:ListBucket", "s3:GetBucketLocation", "s3:ListAllMyBuckets"],
    "Resource": ["arn:aws:s3:::*", "arn:aws:s3:::*/*"]}]}}]
}
J
    ) && mv "$d/s3-sts.json.tmp" "$d/s3-sts.json"
  fi
}
ldap_user() { cut -d: -f"$1" "$STACK/pki/ldap-users" | head -n1; }
# Flux (minio-go) posts only the LDAP name and password; SeaweedFS's AssumeRoleWithLDAPIdentity also needs RoleArn
# and RoleSessionName, which it reads from the URL's query as well: a Bucket's spec.sts.endpoint is
# S3_STS_ENDPOINT?RoleArn=S3_STS_ROLE_ARN&RoleSessionName=NAME (kept apart here: the env file is read unquoted).
sts_env() {
  sts_secrets
  cat <<ENV
export LDAP_URL=ldap://127.0.0.1:$LDAP_PORT
export S3_STS_S3_ENDPOINT=http://127.0.0.1:$S3_STS_PORT
export S3_STS_ENDPOINT=http://127.0.0.1:$S3_STS_PORT/
export S3_STS_ENDPOINT_TLS=https://127.0.0.1:$((S3_STS_PORT + 2))/
export S3_STS_TLS_CA=$STACK/pki/ca.crt
export S3_STS_ROLE_ARN=$S3_STS_ROLE
export S3_STS_LDAP_USERNAME=$(ldap_user 1)
export S3_STS_LDAP_PASSWORD=$(ldap_user 2)
ENV
}

launch_ldap() {
  sts_secrets
  spawn ldap "$LDAP_SERVER" -addr "127.0.0.1:$LDAP_PORT" -users "$STACK/pki/ldap-users"
}
ready_ldap() { wait_for ldap 30 bash -c "exec 3<>/dev/tcp/127.0.0.1/$LDAP_PORT"; }

launch_seaweedfs_sts() {
  sts_secrets
  spawn seaweedfs-sts "$WEED" -logtostderr s3 -filer="127.0.0.1:$((S3_PORT + 5)).$((S3_PORT + 6))" -ip.bind=127.0.0.1 \
    -port="$S3_STS_PORT" -port.grpc=$((S3_STS_PORT + 1)) -port.iceberg=0 -port.lance=0 -iam=false \
    -iam.config="$STACK/pki/s3-sts.json" -localSocket="$STACK/run/seaweedfs-sts.sock" \
    -port.https=$((S3_STS_PORT + 2)) -cert.file="$STACK/pki/sts.crt" -key.file="$STACK/pki/sts.key"
}
# Up means the STS answers: an AssumeRoleWithLDAPIdentity without credentials is refused with STS's own error.
sts_answers() {
  curl -s -X POST --data 'Action=AssumeRoleWithLDAPIdentity&Version=2011-06-15' "http://127.0.0.1:$S3_STS_PORT/" \
    | grep -q '<Code>MissingParameter</Code>'
}
ready_seaweedfs_sts() { wait_for seaweedfs-sts 60 sts_answers; }

launch_server() { "launch_${1//-/_}"; }
ready_server() { "ready_${1//-/_}"; }

install_crds() {
  kubectl_ apply --server-side --force-conflicts -f "$root/deploy/crds/" >/dev/null \
    || die "installing CRDs from deploy/crds failed"
  kubectl_ wait --for condition=Established crd --all --timeout 60s >/dev/null
}

start_component() {
  case $1 in
    etcd) start_etcd ;;
    kube-apiserver) start_apiserver ;;
    kube-controller-manager) start_controller_manager ;;
    kube-scheduler) start_scheduler ;;
    kwok) start_kwok ;;
    kafka) start_kafka ;;
    oci-registry | oci-registry-tls | seaweedfs | azurite) launch_server "$1" && ready_server "$1" ;;
    fake-gcs-server) launch_server "$1" && ready_server "$1" ;;
    ldap | seaweedfs-sts) launch_server "$1" && ready_server "$1" ;;
    *) die "unknown component $1 (one of: ${COMPONENTS[*]})" ;;
  esac
}

stop_component() {
  local name=$1 pf p i grace=100
  # weed server stops its volume server before the filer, whose metadata flush then waits 15 s for it in vain:
  # after 3 s everything that matters is closed.
  [[ $name == seaweedfs ]] && grace=30
  pf=$(pidfile "$name")
  p=$(cat "$pf" 2>/dev/null) || return 0
  if kill -0 "$p" 2>/dev/null; then
    kill -TERM "$p" 2>/dev/null || true
    for ((i = 0; i < grace; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
    for ((i = 0; i < 50; i++)); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  fi
  # The gRPC sockets weed puts in /tmp (named for our ports) outlive a killed process.
  [[ $name == seaweedfs ]] && rm -f /tmp/seaweedfs-master-grpc-$((S3_PORT + 2)).sock \
    /tmp/seaweedfs-volume-grpc-$((S3_PORT + 4)).sock /tmp/seaweedfs-filer-grpc-$((S3_PORT + 6)).sock \
    /tmp/seaweedfs-s3-grpc-$((S3_PORT + 7)).sock
  rm -f "$pf"
}

up() {
  "$here/build.sh"
  [[ -x $PY ]] || die "no Python venv at $PY; run 'make setup' first"
  mkdir -p "$STACK"/{logs,run,data}
  local any=0 c
  for c in "${COMPONENTS[@]}"; do running "$c" && any=1; done
  if ((any == 0)); then rm -rf "$STACK/data" && mkdir -p "$STACK/data"; fi # a fresh cluster per full start
  pki
  server_secrets
  write_kubeconfig
  write_env
  local t0=$SECONDS
  for c in "${SERVERS[@]}"; do launch_server "$c"; done
  for c in "${COMPONENTS[@]}"; do [[ " ${SERVERS[*]} " == *" $c "* ]] || start_component "$c"; done
  for c in "${SERVERS[@]}"; do ready_server "$c"; done
  install_crds
  "$PY" -m gitops_mesh.bus.topics --bootstrap "127.0.0.1:$KAFKA_PORT" --ensure
  log "up in $((SECONDS - t0))s; source $STACK/env"
}

down() {
  local i c
  # The servers depend on nothing: stopped together and while the cluster stops, so they add no time.
  for c in "${SERVERS[@]}"; do stop_component "$c" & done
  for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
    [[ " ${SERVERS[*]} " == *" ${COMPONENTS[i]} "* ]] || stop_component "${COMPONENTS[i]}"
  done
  wait
  log "down"
}

status() {
  local c rc=0 p
  for c in "${COMPONENTS[@]}"; do
    if running "$c"; then p=$(cat "$(pidfile "$c")"); printf '%-24s running  pid %s\n' "$c" "$p"
    else printf '%-24s stopped\n' "$c"; rc=1; fi
  done
  if ((rc == 0)); then
    kubectl_ get --raw /readyz >/dev/null 2>&1 && echo "kube-apiserver ready    https://127.0.0.1:$APISERVER_PORT" || { echo "kube-apiserver not ready"; rc=1; }
    printf 'nodes ready             %s\n' "$(kubectl_ get nodes --no-headers 2>/dev/null | grep -c ' Ready')"
    printf 'CRDs established        %s\n' "$(kubectl_ get crd --no-headers 2>/dev/null | wc -l)"
    "$PY" -m gitops_mesh.bus.topics --bootstrap "127.0.0.1:$KAFKA_PORT" --check >/dev/null 2>&1 \
      && echo "kafka ready             127.0.0.1:$KAFKA_PORT" || { echo "kafka not ready"; rc=1; }
    curl -sf "http://127.0.0.1:$OCI_REGISTRY_PORT/v2/" >/dev/null 2>&1 \
      && echo "oci-registry ready      127.0.0.1:$OCI_REGISTRY_PORT (plain HTTP)" || { echo "oci-registry not ready"; rc=1; }
    registry_challenges >/dev/null 2>&1 \
      && echo "oci-registry-tls ready  127.0.0.1:$OCI_REGISTRY_TLS_PORT (TLS, basic auth)" || { echo "oci-registry-tls not ready"; rc=1; }
    s3_answers >/dev/null 2>&1 \
      && echo "seaweedfs s3 ready      http://127.0.0.1:$S3_PORT" || { echo "seaweedfs s3 not ready"; rc=1; }
    azurite_answers >/dev/null 2>&1 \
      && echo "azurite blob ready      http://127.0.0.1:$AZURITE_BLOB_PORT/$AZURITE_ACCOUNT" || { echo "azurite blob not ready"; rc=1; }
    gcs_answers >/dev/null 2>&1 \
      && echo "fake-gcs-server ready   http://127.0.0.1:$GCS_PORT" || { echo "fake-gcs-server not ready"; rc=1; }
    sts_answers >/dev/null 2>&1 \
      && echo "seaweedfs sts ready     http://127.0.0.1:$S3_STS_PORT (LDAP 127.0.0.1:$LDAP_PORT)" || { echo "seaweedfs sts not ready"; rc=1; }
  fi
  return $rc
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  start) mkdir -p "$STACK"/{logs,run,data}; pki; server_secrets; start_component "${2:?component}" ;;
  stop) stop_component "${2:?component}" ;;
  restart) stop_component "${2:?component}"; pki; server_secrets; start_component "$2" ;;
  *) echo "usage: $0 up|down|status|start C|stop C|restart C" >&2; exit 2 ;;
esac
