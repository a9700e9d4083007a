// Worklens: tells the Worklens agent which window has the focus. A KWin script
// (KDE Plasma 5 and 6) that the agent loads over D-Bus (org.kde.KWin /Scripting)
// when it starts and unloads when it stops. On every focus change and every
// title change of the focused window it calls the agent's own D-Bus name with
// the window's resource class, caption and pid, all as strings.

const SERVICE = "org.worklens.Agent";
const PATH = "/org/worklens/KWin";
const IFACE = "org.worklens.KWin1";
let watched = null;

function send(window) {
    if (!window) {
        callDBus(SERVICE, PATH, IFACE, "Focus", "", "", "0");
        return;
    }
    callDBus(SERVICE, PATH, IFACE, "Focus", String(window.resourceClass || ""),
             String(window.caption || ""), String(window.pid || 0));
}

function onCaption() {
    send(watched);
}

function follow(window) {
    if (watched)
        watched.captionChanged.disconnect(onCaption);
    watched = window || null;
    if (watched)
        watched.captionChanged.connect(onCaption);
    send(watched);
}

// Plasma 6: workspace.windowActivated / activeWindow; Plasma 5: clientActivated / activeClient
const activated = workspace.windowActivated || workspace.clientActivated;
activated.connect(follow);
follow(workspace.activeWindow !== undefined ? workspace.activeWindow : workspace.activeClient);
