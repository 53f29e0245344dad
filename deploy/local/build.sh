#!/usr/bin/env bash
# Builds (once) every binary the local stack runs, from the registries this machine reaches, into a
# cache outside the repo. Idempotent: a binary already in the cache is not built again.
#   deploy/local/build.sh            build everything missing
#   deploy/local/build.sh --print    print the path of each binary (KEY=path lines)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
CACHE=${GITOPS_MESH_CACHE:-$HOME/.cache/gitops-mesh}
export GOTOOLCHAIN=local GOFLAGS=-buildvcs=false
K8S_DIR=$CACHE/kubernetes-$K8S_VERSION
ETCD_DIR=$CACHE/etcd-$ETCD_VERSION
KWOK_DIR=$CACHE/kwok-$KWOK_VERSION
# The rendered stages file is named for the content of our own stages, so editing them renders it anew.
KWOK_STAGES_FILE=$KWOK_DIR/stages-$(sha256sum "$here/kwok-stages.yaml" | cut -c1-12).yaml
HELM_DIR=$CACHE/helm-$HELM_VERSION
REGISTRY_DIR=$CACHE/distribution-$DISTRIBUTION_VERSION
KUSTOMIZE_DIR=$CACHE/kustomize-$KUSTOMIZE_VERSION
SOPS_DIR=$CACHE/sops-$SOPS_VERSION
AGE_DIR=$CACHE/age-$AGE_VERSION
KAFKA_DIR=$CACHE/kafka-$KAFKA_VERSION
SEAWEEDFS_DIR=$CACHE/seaweedfs-$SEAWEEDFS_VERSION
AZURITE_DIR=$CACHE/azurite-$AZURITE_VERSION
FAKE_GCS_DIR=$CACHE/fake-gcs-server-$FAKE_GCS_SERVER_VERSION
# Our own LDAP directory for the STS tests, named for its sources so an edit builds it anew.
LDAP_SERVER_DIR=$CACHE/ldap-server-$(cat "$here/ldap-server/"{go.mod,go.sum,main.go} | sha256sum | cut -c1-12)

paths() {
  cat <<P
ETCD=$ETCD_DIR/etcd
KUBE_APISERVER=$K8S_DIR/kube-apiserver
KUBE_CONTROLLER_MANAGER=$K8S_DIR/kube-controller-manager
KUBE_SCHEDULER=$K8S_DIR/kube-scheduler
KUBECTL=$K8S_DIR/kubectl
KWOK=$KWOK_DIR/kwok
KWOK_STAGES=$KWOK_STAGES_FILE
HELM=$HELM_DIR/helm
OCI_REGISTRY_BIN=$REGISTRY_DIR/registry
KUSTOMIZE=$KUSTOMIZE_DIR/kustomize
SOPS=$SOPS_DIR/sops
AGE_KEYGEN=$AGE_DIR/age-keygen
KAFKA_LIBS=$KAFKA_DIR/libs
WEED=$SEAWEEDFS_DIR/weed
AZURITE_BLOB=$AZURITE_DIR/node_modules/azurite/dist/src/blob/main.js
FAKE_GCS_SERVER=$FAKE_GCS_DIR/fake-gcs-server
LDAP_SERVER=$LDAP_SERVER_DIR/ldap-server
P
}
if [[ ${1:-} == --print ]]; then paths; exit 0; fi

log() { printf '[build] %s\n' "$*" >&2; }
mkdir -p "$CACHE/logs"

# A wrapper module: the upstream go.mod replaces its own sub-modules with local paths, which `go install`
# refuses, so we require the published twins instead. $1 dir, $2 module, $3 version, $4.. replace lines.
wrapper_module() {
  local dir=$1 mod=$2 ver=$3; shift 3
  mkdir -p "$dir"
  {
    echo "module gitops-mesh.local/build"
    echo
    echo "go 1.24.0"
    echo
    echo "require $mod $ver"
    for r in "$@"; do echo "replace $r"; done
  } >"$dir/go.mod"
}

build_etcd() {
  [[ -x $ETCD_DIR/etcd ]] && return 0
  log "etcd $ETCD_VERSION"
  local src=$CACHE/src/etcd-$ETCD_VERSION reps=()
  for m in api/v3 client/pkg/v3 client/v3 pkg/v3; do reps+=("go.etcd.io/etcd/$m => go.etcd.io/etcd/$m $ETCD_VERSION"); done
  wrapper_module "$src" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "${reps[@]}"
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' >"$src/tools.go"
  (cd "$src" && go mod tidy && go build -o "$ETCD_DIR/etcd.tmp" go.etcd.io/etcd/server/v3) >>"$CACHE/logs/etcd.log" 2>&1 \
    || { log "etcd build failed; see $CACHE/logs/etcd.log"; return 1; }
  mv "$ETCD_DIR/etcd.tmp" "$ETCD_DIR/etcd"
}

build_kubernetes() {
  local want=(kube-apiserver kube-controller-manager kube-scheduler kubectl) missing=0 b
  for b in "${want[@]}"; do [[ -x $K8S_DIR/$b ]] || missing=1; done
  ((missing)) || return 0
  log "kubernetes $K8S_VERSION (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl): a long first build"
  local src=$CACHE/src/kubernetes-$K8S_VERSION staging=${K8S_VERSION/v1./v0.} reps=() gomod
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  while read -r m; do reps+=("$m => $m $staging"); done < <(awk '/=> \.\/staging/ {print $1}' "$gomod")
  wrapper_module "$src" k8s.io/kubernetes "$K8S_VERSION" "${reps[@]}"
  {
    printf '//go:build tools\n\npackage tools\n\nimport (\n'
    for b in "${want[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$b"; done
    printf ')\n'
  } >"$src/tools.go"
  local minor=${K8S_VERSION#v1.} ldflags="" p
  minor=${minor%%.*}
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor"
    ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  mkdir -p "$K8S_DIR/tmp"
  (cd "$src" && go mod tidy && go build -trimpath -ldflags "-s -w$ldflags" -o "$K8S_DIR/tmp/" \
      $(printf 'k8s.io/kubernetes/cmd/%s ' "${want[@]}")) >>"$CACHE/logs/kubernetes.log" 2>&1 \
    || { log "kubernetes build failed; see $CACHE/logs/kubernetes.log"; return 1; }
  for b in "${want[@]}"; do mv "$K8S_DIR/tmp/$b" "$K8S_DIR/$b"; done
  rmdir "$K8S_DIR/tmp"
}

# go install of a module without local replaces; $1 dir, $2 package@version, $3 binary name.
go_install() {
  local dir=$1 pkg=$2 name=$3
  [[ -x $dir/$name ]] && return 0
  log "$pkg"
  mkdir -p "$dir"
  GOBIN="$dir" go install -trimpath -ldflags "${4:-}" "$pkg" >>"$CACHE/logs/$name.log" 2>&1 \
    || { log "$name build failed; see $CACHE/logs/$name.log"; return 1; }
}

build_kafka() {
  local stamp=$KAFKA_DIR/.complete-$LOG4J_VERSION-$SLF4J_VERSION
  [[ -f $stamp ]] && return 0
  log "kafka $KAFKA_VERSION jars from Maven Central"
  mkdir -p "$KAFKA_DIR"
  cat >"$KAFKA_DIR/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.gitops-mesh</groupId><artifactId>kafka-stack</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId><version>$SLF4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>$LOG4J_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId><version>$LOG4J_VERSION</version></dependency>
  </dependencies>
</project>
POM
  rm -rf "$KAFKA_DIR/libs"
  (cd "$KAFKA_DIR" && mvn -q -B dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory=libs) \
    >>"$CACHE/logs/kafka.log" 2>&1 || { log "kafka download failed; see $CACHE/logs/kafka.log"; return 1; }
  touch "$stamp"
}

# kwok ships its node and pod life-cycle Stages as kustomize bases in its module: render the "fast" set once and
# add ours (kwok-stages.yaml: Pods that succeed or fail by annotation, for Helm hooks, tests and Jobs).
build_kwok_stages() {
  [[ -s $KWOK_STAGES_FILE ]] && return 0
  local dir
  dir=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
  { "$KUSTOMIZE_DIR/kustomize" build "$dir/kustomize/stage/fast" && echo "---" && cat "$here/kwok-stages.yaml"; } \
    >"$KWOK_STAGES_FILE.tmp" && mv "$KWOK_STAGES_FILE.tmp" "$KWOK_STAGES_FILE"
}

# SeaweedFS (Apache-2.0; MinIO's server is AGPL): the S3-compatible server of the stack. Its go.mod replaces two
# modules with published ones, which `go install` refuses, so it builds through a wrapper carrying the same lines.
build_seaweedfs() {
  [[ -x $SEAWEEDFS_DIR/weed ]] && return 0
  log "seaweedfs $SEAWEEDFS_VERSION: a long first build"
  local src=$CACHE/src/seaweedfs-$SEAWEEDFS_VERSION reps=() gomod t0=$SECONDS
  gomod=$(go mod download -json "github.com/seaweedfs/seaweedfs@$SEAWEEDFS_VERSION" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')
  while read -r r; do reps+=("$r"); done < <(sed -n 's/^replace \(.* => [^.].*\)$/\1/p' "$gomod")
  wrapper_module "$src" github.com/seaweedfs/seaweedfs "$SEAWEEDFS_VERSION" "${reps[@]}"
  printf '//go:build tools\n\npackage tools\n\nimport _ "github.com/seaweedfs/seaweedfs/weed"\n' >"$src/tools.go"
  mkdir -p "$SEAWEEDFS_DIR"
  (cd "$src" && go mod tidy && go build -trimpath -ldflags "-s -w" -o "$SEAWEEDFS_DIR/weed.tmp" \
      github.com/seaweedfs/seaweedfs/weed) >>"$CACHE/logs/seaweedfs.log" 2>&1 \
    || { log "seaweedfs build failed; see $CACHE/logs/seaweedfs.log"; return 1; }
  mv "$SEAWEEDFS_DIR/weed.tmp" "$SEAWEEDFS_DIR/weed"
  log "seaweedfs built in $((SECONDS - t0))s"
}

# Azurite (the Azure Storage emulator) from the npm registry; only its blob service is run.
install_azurite() {
  [[ -f $AZURITE_DIR/.complete ]] && return 0
  log "azurite $AZURITE_VERSION from the npm registry"
  mkdir -p "$AZURITE_DIR"
  (cd "$AZURITE_DIR" && npm install --no-audit --no-fund --omit=dev --no-save "azurite@$AZURITE_VERSION") \
    >>"$CACHE/logs/azurite.log" 2>&1 || { log "azurite install failed; see $CACHE/logs/azurite.log"; return 1; }
  touch "$AZURITE_DIR/.complete"
}

# The LDAP directory SeaweedFS's STS authenticates against (deploy/local/ldap-server: vjeantet/ldapserver, MIT).
build_ldap_server() {
  [[ -x $LDAP_SERVER_DIR/ldap-server ]] && return 0
  log "ldap-server (deploy/local/ldap-server)"
  mkdir -p "$LDAP_SERVER_DIR"
  (cd "$here/ldap-server" && go build -trimpath -ldflags "-s -w" -o "$LDAP_SERVER_DIR/ldap-server.tmp" .) \
    >>"$CACHE/logs/ldap-server.log" 2>&1 || { log "ldap-server build failed; see $CACHE/logs/ldap-server.log"; return 1; }
  mv "$LDAP_SERVER_DIR/ldap-server.tmp" "$LDAP_SERVER_DIR/ldap-server"
}

build_kafka
build_etcd
# Helm's Makefile stamps the version into helm.sh/helm/v4/internal/version (a tagged build: no metadata, a clean
# tree); the commit is not in the module, so `helm version` shows an empty GitCommit.
go_install "$HELM_DIR" "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" helm \
  "-s -w -X helm.sh/helm/v4/internal/version.version=$HELM_VERSION -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
# distribution's registry: the OCI registry Helm charts are pushed to in tests (gitops_mesh_dev.ociregistry).
go_install "$REGISTRY_DIR" "github.com/distribution/distribution/v3/cmd/registry@$DISTRIBUTION_VERSION" registry \
  "-s -w -X github.com/distribution/distribution/v3/version.version=$DISTRIBUTION_VERSION -X github.com/distribution/distribution/v3/version.mainpkg=github.com/distribution/distribution/v3"
go_install "$KUSTOMIZE_DIR" "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION" kustomize "-s -w"
go_install "$SOPS_DIR" "github.com/getsops/sops/v3/cmd/sops@$SOPS_VERSION" sops \
  "-s -w"
go_install "$AGE_DIR" "filippo.io/age/cmd/age-keygen@$AGE_VERSION" age-keygen "-s -w"
go_install "$KWOK_DIR" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" kwok "-s -w"
build_kwok_stages
install_azurite
build_kubernetes
build_seaweedfs
# fake-gcs-server: the stack's Google Cloud Storage (JSON API) for Buckets with provider gcp; no local replaces.
go_install "$FAKE_GCS_DIR" "github.com/fsouza/fake-gcs-server@$FAKE_GCS_SERVER_VERSION" fake-gcs-server "-s -w"
build_ldap_server
log "all binaries in $CACHE"
