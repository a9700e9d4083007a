#!/bin/sh
# Build worklens-agent-VERSION.pkg from "dist/Worklens Agent.app" (see
# worklens-agent.spec) with pkgbuild + productbuild. NOT built or verified in CI.
#   packaging/macos/build-pkg.sh VERSION
# Optional: SIGN_IDENTITY="Developer ID Installer: Example (TEAMID)" to sign the
# product (then notarize it with `xcrun notarytool submit --wait` and staple it).
set -eu

VERSION=${1:?usage: build-pkg.sh VERSION}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
APP="$REPO/dist/Worklens Agent.app"
OUT=${OUT:-$REPO/dist}

[ -d "$APP" ] || { echo "build-pkg.sh: no $APP; run pyinstaller packaging/macos/worklens-agent.spec" >&2; exit 1; }

STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
ROOT="$STAGE/root"
mkdir -p "$ROOT/Applications" "$ROOT/Library/LaunchAgents" \
    "$ROOT/Library/Application Support/Worklens"
ditto "$APP" "$ROOT/Applications/Worklens Agent.app"
cp "$HERE/org.worklens.agent.plist" "$ROOT/Library/LaunchAgents/"
# The template; postinstall makes agent.toml from it only when there is none,
# so an upgrade keeps the admin's file.
cp "$REPO/packaging/linux/agent/agent.toml" \
    "$ROOT/Library/Application Support/Worklens/agent.toml.default"

pkgbuild --root "$ROOT" --component-plist "$HERE/components.plist" \
    --scripts "$HERE/scripts" --identifier org.worklens.agent --version "$VERSION" \
    --install-location / "$STAGE/worklens-agent-component.pkg"
if [ -n "${SIGN_IDENTITY:-}" ]; then
    productbuild --package "$STAGE/worklens-agent-component.pkg" --sign "$SIGN_IDENTITY" \
        "$OUT/worklens-agent-$VERSION.pkg"
else
    productbuild --package "$STAGE/worklens-agent-component.pkg" \
        "$OUT/worklens-agent-$VERSION.pkg"
fi
echo "$OUT/worklens-agent-$VERSION.pkg"
