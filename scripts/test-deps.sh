#!/usr/bin/env bash
# Installs the Debian packages the tests use, once: each tool is checked with `command -v`
# first, and apt-get runs (update, then install) only when something is missing.
#
#   curl             scripts/cluster.sh polls /api/v1/health with it
#   systemd-analyze  verifies deploy/systemd/linkops.service      (package systemd)
#   vagrant          validates the Vagrantfile (brings ruby)       (package vagrant)
#   docker           builds and runs the image                     (package docker.io)
#   docker-compose   validates and runs docker-compose.yml         (package docker-compose)
#   setsid, tac      scripts/cluster.sh                            (util-linux, coreutils)
#   nsenter, iptables the fault suite partitions containers        (util-linux, iptables)
#   mosquitto        a real MQTT broker for MQTT_CLIENT tests       (mosquitto)
#   mosquitto_pub/sub real MQTT clients for MQTT_SERVER tests       (mosquitto-clients)
#   coap-client-*    real CoAP clients, plain and DTLS (libcoap)     (libcoap3-bin)
#   openssl          TLS and DTLS clients in listener tests          (openssl)
#   sipp             a real SIP camera for the GB/T 28181 tests      (sip-tester)
#   chromium         the browser the web console tests drive         (chromium, fonts-noto-cjk)
#   versitygw        a real S3 server for the blob-store tests       (go install, below)
#
# Recommended packages are skipped: vagrant would otherwise pull in libvirt, qemu and a
# kernel; `vagrant validate --ignore-provider` needs no provider.
set -euo pipefail

need=()
want() { # want COMMAND PACKAGE
	command -v "$1" >/dev/null 2>&1 || need+=("$2")
}
want curl curl
want systemd-analyze systemd
want vagrant vagrant
want ruby ruby
want docker docker.io
want docker-compose docker-compose
want setsid util-linux
want tac coreutils
want nsenter util-linux
want iptables iptables
want mosquitto mosquitto
want mosquitto_pub mosquitto-clients
want mosquitto_sub mosquitto-clients
want coap-client-notls libcoap3-bin
want coap-client-openssl libcoap3-bin
want openssl openssl
want sipp sip-tester
want chromium chromium
# The console is bilingual: without a CJK font its Chinese screenshots show boxes.
[[ -e /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ]] || need+=(fonts-noto-cjk)

# versitygw, the S3 server of the blob-store tests, is a Go program and not a Debian
# package: installed with `go install` into the directory internal/testutil looks in (same
# version, same place), once. Before the apt step, which may end the script early.
vgw_dir="${LINKOPS_TOOLS_DIR:-$HOME/.cache/linkops/bin}"
if [[ ! -x "$vgw_dir/versitygw" ]]; then
	echo "test dependencies: installing versitygw into $vgw_dir (about 90 s)"
	mkdir -p "$vgw_dir"
	vgw_tmp=$(mktemp -d "$vgw_dir/.install-XXXXXX")
	(cd "$vgw_tmp" && GOBIN="$vgw_tmp" GOFLAGS= CGO_ENABLED=0 "${GO:-go}" install github.com/versity/versitygw/cmd/versitygw@v1.8.0)
	mv "$vgw_tmp/versitygw" "$vgw_dir/versitygw"
	rmdir "$vgw_tmp"
fi

if ((${#need[@]} == 0)); then
	echo "test dependencies: all present"
	exit 0
fi

sudo=()
if ((EUID != 0)); then
	command -v sudo >/dev/null 2>&1 || {
		echo "test-deps: need root (or sudo) to install: ${need[*]}" >&2
		exit 1
	}
	sudo=(sudo)
fi
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
echo "test dependencies: installing ${need[*]}"
"${sudo[@]}" apt-get update -qq
"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
