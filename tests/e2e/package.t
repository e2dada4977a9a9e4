#!/usr/bin/env bash
# The Debian packages as an operator gets them: `make deb` builds them with
# debhelper, each holds what it should, lintian reports no error, and once
# installed the systemd units pass `systemd-analyze verify` and a program
# builds against libsoftunicast-dev through pkg-config.  The packages are
# purged again at the end (skipped when this host already has softunicast
# installed: the test never replaces an operator's package).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d /tmp/su-package.XXXXXX)
. "$ROOT/tests/e2e/lib/tap.sh" # ok, skip_all (removes $T), N, FAILS
B=$T/build
INSTALLED=
cleanup() {
	[ -n "$INSTALLED" ] && dpkg --purge softunicast libsoftunicast-dev libsoftunicast0 >/dev/null 2>&1
	rm -rf "$T"
}
trap cleanup EXIT
for c in dpkg-buildpackage dh lintian dpkg-deb; do command -v $c >/dev/null || skip_all "$c not installed"; done

check() { local what=$1; shift; "$@" >"$T/out" 2>&1; ok $? "$what" "$(tail -20 "$T/out")"; }
has() { # has PACKAGE PATH...: the package's file list holds every PATH
	local deb=$B/deb/$1_*.deb; shift
	dpkg-deb -c $deb | awk '{print $6}' | sed 's#^\./#/#' >"$T/list"
	for p in "$@"; do grep -qx "$p" "$T/list" || { echo "missing $p"; return 1; }; done
}

# Its own build directory: never races the tree's build/ (make check's).
check "make deb builds the packages" make -C "$ROOT" BUILD="$B" deb
MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
check "softunicast: binary, units, BPF objects, man pages, examples, dashboard and alert rules" has softunicast \
	/usr/share/softunicast/grafana/softunicast.json /usr/share/softunicast/prometheus/softunicast-alerts.yml \
	/usr/bin/softunicast /lib/systemd/system/softunicast-router@.service \
	/lib/systemd/system/softunicast-agent.service \
	/usr/lib/softunicast/bpf/router.bpf.o /usr/lib/softunicast/bpf/decap.bpf.o \
	/usr/share/man/man1/softunicast.1.gz /usr/share/man/man1/softunicast-agent.1.gz \
	/usr/share/man/man1/softunicast-router.1.gz /usr/share/softunicast/examples/fleet.yaml \
	/usr/share/softunicast/examples/etc/agent.conf.example /usr/share/softunicast/examples/etc/router.conf.example
check "libsoftunicast0: the shared library and the LD_PRELOAD shim" has libsoftunicast0 \
	/usr/lib/$MA/libsoftunicast.so.0 /usr/lib/$MA/libsoftunicast-preload.so
check "libsoftunicast-dev: headers, static library, pkg-config" has libsoftunicast-dev \
	/usr/include/softunicast/egress.h /usr/lib/$MA/libsoftunicast.so /usr/lib/$MA/libsoftunicast.a \
	/usr/lib/$MA/pkgconfig/softunicast.pc
check "no package ships a build path or the tests" sh -c "! dpkg-deb -c $B/deb/*.deb | grep -Eq '/build/|tests/'"
lintian --tag-display-limit 0 "$B"/deb/*.changes >"$T/lintian" 2>&1
check "lintian reports no error" sh -c "! grep '^E:' '$T/lintian'"

if dpkg -s softunicast >/dev/null 2>&1 || dpkg -s libsoftunicast0 >/dev/null 2>&1; then
	echo "# softunicast is installed on this host: install checks skipped"
else
	INSTALLED=1
	check "the packages install" dpkg -i "$B"/deb/softunicast_*.deb "$B"/deb/libsoftunicast0_*.deb \
		"$B"/deb/libsoftunicast-dev_*.deb
	check "the installed command runs" /usr/bin/softunicast --version
	for u in softunicast-router@lhr.service $(cd "$ROOT/contrib/systemd" && ls | grep -v @); do
		check "systemd-analyze verify $u" systemd-analyze verify "$u"
	done
	check "units are Type=notify with a watchdog and a state directory" sh -c \
		"for u in /lib/systemd/system/softunicast-*.service; do grep -q '^Type=notify' \$u && grep -q '^WatchdogSec=' \$u && grep -q '^StateDirectory=' \$u && grep -q '^Restart=on-failure' \$u || { echo \$u; exit 1; }; done"
	printf '#include <softunicast/egress.h>\nint main(void) { return 0; }\n' >"$T/app.c"
	check "a program builds against libsoftunicast-dev (pkg-config)" \
		sh -c "cc -o '$T/app' '$T/app.c' \$(pkg-config --cflags --libs softunicast) && '$T/app'"
	check "purge removes every file" sh -c "dpkg --purge softunicast libsoftunicast-dev libsoftunicast0 >/dev/null && ! test -e /usr/bin/softunicast && ! test -e /lib/systemd/system/softunicast-agent.service"
	INSTALLED=
fi

echo "1..$N"
[ "$FAILS" = 0 ]
