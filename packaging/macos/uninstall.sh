#!/bin/sh
# Remove the Worklens agent from a Mac (run as root, e.g. as an MDM script).
# NOT verified in CI. --purge-config also deletes the shared config
# (/Library/Application Support/Worklens). Users' own data directories
# (~/Library/Application Support/Worklens/agent) are never touched.
set -eu

LABEL=org.worklens.agent
user=$(/usr/bin/stat -f %Su /dev/console)
if [ -n "$user" ] && [ "$user" != root ]; then
    /bin/launchctl bootout "gui/$(/usr/bin/id -u "$user")/$LABEL" 2>/dev/null || true
fi
rm -f /Library/LaunchAgents/org.worklens.agent.plist
rm -rf "/Applications/Worklens Agent.app"
if [ "${1:-}" = --purge-config ]; then
    rm -rf "/Library/Application Support/Worklens"
fi
/usr/sbin/pkgutil --forget "$LABEL" >/dev/null 2>&1 || true
