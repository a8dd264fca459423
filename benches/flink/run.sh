#!/usr/bin/env bash
# Runs the Flink peer of kairos' abandoned-cart benchmark (AbandonedCart.java)
# on a Segment JSON-lines file, in one local JVM (a Flink MiniCluster).
#
#   benches/flink/run.sh EVENTS OUT [PARALLELISM]     (parallelism 1 by default)
#
# Idempotent: the Flink 1.20.1 jars come from PyPI's apache-flink-libraries
# sdist (pip download, ~231 MB, once) into $FLINK_CACHE
# (default ~/.cache/kairos-flink); the job is recompiled when the source
# changes. Needs python3 + pip, Java 17 (java, javac) and /usr/bin/time.
# JVM heap: -Xmx${FLINK_XMX:-2g}; extra JVM flags in $FLINK_JAVA_OPTS.
# Prints Flink's own counters and timings, then wall time and peak RSS
# (from /usr/bin/time -v, whose full report is kept in OUT.time).
set -euo pipefail

if [[ $# -lt 2 || $# -gt 3 ]]; then
    echo "usage: $0 EVENTS OUT [PARALLELISM]" >&2
    exit 2
fi
events=$1 out=$2 parallelism=${3:-1}
[[ -r $events ]] || { echo "$0: cannot read $events" >&2; exit 2; }

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
version=1.20.1
cache=${FLINK_CACHE:-$HOME/.cache/kairos-flink}
lib=$cache/apache-flink-libraries-$version/deps/lib
build=$cache/build

# 1. Flink's jars, once.
if [[ ! -f $lib/flink-dist-$version.jar ]]; then
    mkdir -p "$cache"
    tarball=$(ls "$cache"/apache[-_]flink[-_]libraries-"$version".tar.gz 2>/dev/null | head -n 1 || true)
    if [[ -z $tarball ]]; then
        echo "fetching apache-flink-libraries==$version from PyPI into $cache ..." >&2
        python3 -m pip download --quiet --no-deps --no-binary :all: -d "$cache" \
            "apache-flink-libraries==$version"
        tarball=$(ls "$cache"/apache[-_]flink[-_]libraries-"$version".tar.gz | head -n 1)
    fi
    # Only the jars: the sdist also carries Python sources and optional plugins.
    tar -xzf "$tarball" -C "$cache" --wildcards '*/deps/lib/*'
    [[ -f $lib/flink-dist-$version.jar ]] || { echo "$0: no flink-dist jar in $tarball" >&2; exit 1; }
fi
classpath=$lib/flink-dist-$version.jar:$lib/flink-connector-files-$version.jar
for jar in "$lib"/log4j-*.jar; do classpath=$classpath:$jar; done

# 2. The job, compiled when AbandonedCart.java is newer than its class.
mkdir -p "$build"
if [[ ! -f $build/AbandonedCart.class || $here/AbandonedCart.java -nt $build/AbandonedCart.class ]]; then
    javac -nowarn -d "$build" -cp "$classpath" "$here/AbandonedCart.java"
fi
# Flink's INFO logging would otherwise go to the console.
cat > "$build/log4j2.properties" <<'LOG'
rootLogger.level = ERROR
rootLogger.appenderRef.console.ref = console
appender.console.name = console
appender.console.type = Console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss,SSS} %-5p %c{1} - %m%n
LOG

# 3. The run.
echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
# shellcheck disable=SC2086  # FLINK_JAVA_OPTS is a list of flags
/usr/bin/time -v -o "$out.time" \
    java -Xmx"${FLINK_XMX:-2g}" ${FLINK_JAVA_OPTS:-} \
        -Dlog4j2.configurationFile="$build/log4j2.properties" \
        -cp "$build:$classpath" AbandonedCart "$events" "$out" "$parallelism"
grep -E 'Elapsed \(wall clock\)|Maximum resident set size|User time|System time|Percent of CPU' "$out.time" >&2
echo "decisions written to $out: $(wc -l < "$out")" >&2
