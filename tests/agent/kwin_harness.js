// Runs a KWin script under node with a stand-in of the parts of KWin's scripting
// API it uses (workspace's activation signal and active window, windows with a
// captionChanged signal, callDBus), for tests/agent/dbus_standins.py.
// argv: SCRIPT PLASMA(5|6) INITIAL_WINDOW_JSON ("null": none). Each callDBus is
// printed as one JSON line; stdin takes one JSON command a line:
//   {"activate": {"resourceClass": ..., "caption": ..., "pid": ...} | null}
//   {"caption": "new title"}          (of the active window)
const fs = require('fs');
const vm = require('vm');
const readline = require('readline');

const [, , scriptPath, plasma, initial] = process.argv;

function signal() {
    const slots = [];
    return {
        connect: f => slots.push(f),
        disconnect: f => { const i = slots.indexOf(f); if (i >= 0) slots.splice(i, 1); },
        emit: (...args) => slots.slice().forEach(f => f(...args)),
    };
}

function makeWindow(w) {
    return w && { resourceClass: w.resourceClass, caption: w.caption, pid: w.pid,
                  captionChanged: signal() };
}

let current = makeWindow(JSON.parse(initial));
const activated = signal();
const workspace = {};
if (plasma === '6') {
    workspace.windowActivated = activated;
    Object.defineProperty(workspace, 'activeWindow', { get: () => current });
} else {
    workspace.clientActivated = activated;
    Object.defineProperty(workspace, 'activeClient', { get: () => current });
}
const callDBus = (...args) => process.stdout.write(JSON.stringify(args) + '\n');

vm.runInNewContext(fs.readFileSync(scriptPath, 'utf8'), { workspace, callDBus },
                   { filename: scriptPath });

readline.createInterface({ input: process.stdin }).on('line', line => {
    const command = JSON.parse(line);
    if ('activate' in command) {
        current = makeWindow(command.activate);
        activated.emit(current);
    } else if ('caption' in command) {
        current.caption = command.caption;
        current.captionChanged.emit();
    }
});
