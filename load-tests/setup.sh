#!/usr/bin/env bash
# Installs what the load-test harness needs from Debian packages:
#   postfix  -> /usr/sbin/smtp-sink, /usr/sbin/smtp-source, and the binaries for a private relay instance.
# Idempotent. Must run as root (apt-get). Leaves NO system postfix daemon running on port 25: the harness
# starts its own private instance (own config_directory/queue_directory, 127.0.0.1 only, its own port).
set -euo pipefail

if [[ $(id -u) -ne 0 ]]; then
  echo "setup.sh: run as root (apt-get install)" >&2
  exit 1
fi

need_install=0
for bin in /usr/sbin/postfix /usr/sbin/smtp-sink /usr/sbin/smtp-source /usr/sbin/postconf; do
  [[ -x $bin ]] || need_install=1
done

if [[ $need_install -eq 1 ]]; then
  export DEBIAN_FRONTEND=noninteractive
  # "No configuration" makes the postinst skip writing /etc/postfix/main.cf and skip starting the daemon.
  echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
  echo "postfix postfix/mailname string loadtest.invalid" | debconf-set-selections
  # Belt and braces: forbid service starts during this install only (policy-rc.d exit 101 = "action forbidden").
  policy=/usr/sbin/policy-rc.d
  created_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; created_policy=1
  fi
  trap '[[ $created_policy -eq 1 ]] && rm -f "$policy"; true' EXIT
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends postfix >/dev/null
fi

# If a system instance is running anyway (e.g. installed earlier with a config), stop it: the harness
# must own every SMTP listener on this box, and port 25 must stay free.
if [[ -f /etc/postfix/main.cf ]] && postfix status >/dev/null 2>&1; then
  echo "setup.sh: stopping the system postfix instance"
  postfix stop >/dev/null 2>&1 || true
fi
if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled postfix >/dev/null 2>&1; then
  systemctl disable --now postfix >/dev/null 2>&1 || true
fi

# The private relay instance runs as the default mail_owner "postfix" and setgid_group "postdrop";
# the package creates both. smtp-sink needs an unprivileged -u user when started as root: "nobody".
getent passwd postfix >/dev/null || { echo "setup.sh: user 'postfix' missing" >&2; exit 1; }
getent group postdrop >/dev/null || { echo "setup.sh: group 'postdrop' missing" >&2; exit 1; }

echo "setup.sh: ok ($(postconf -d mail_version 2>/dev/null | sed 's/ //g'), smtp-sink/smtp-source in /usr/sbin)"
