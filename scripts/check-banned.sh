#!/usr/bin/env bash
# Fails if egov's C sources call a banned libc function. Each has a bounded
# or checked replacement:
#   strcpy/strcat/sprintf/vsprintf -> buf_* or snprintf with a checked result
#   strncpy/strncat                -> snprintf or memcpy with explicit lengths
#   strtok                         -> strtok_r or a cursor parser
#   atoi/atol/atoll                -> strtoll with range checks (atoi is silent on junk)
#   gets                           -> fgets
#   gmtime/localtime/ctime/asctime -> the _r variants (the plain ones are not thread-safe)
set -u
cd "$(dirname "$0")/.."
pattern='\b(strcpy|strcat|strncpy|strncat|sprintf|vsprintf|strtok|atoi|atol|atoll|gets|gmtime|localtime|ctime|asctime)[[:space:]]*\('
hits=$(grep -rnE "$pattern" src tests/unit tests/fuzz --include='*.c' --include='*.h' | grep -vE '^\S+:[0-9]+:\s*(\*|//)' || true)
if [ -n "$hits" ]; then
	echo "banned functions used:"
	echo "$hits"
	exit 1
fi
exit 0
