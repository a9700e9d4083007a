// Worklens focused window, for GNOME Shell 42 to 44 (the extension format before ES
// modules). The same as focus@worklens.org, which serves GNOME Shell 45 and later:
// exports the focused window's WM class, title and pid on the session bus
// (org.worklens.FocusedWindow, /org/worklens/FocusedWindow, interface
// org.worklens.FocusedWindow1 in the XML file beside this one), with a Changed
// signal whenever the focus or the focused window's title changes.
/* exported init */

const {Gio, GLib} = imports.gi;
const Me = imports.misc.extensionUtils.getCurrentExtension();

const BUS_NAME = 'org.worklens.FocusedWindow';
const OBJECT_PATH = '/org/worklens/FocusedWindow';
const INTERFACE_FILE = 'org.worklens.FocusedWindow1.xml';

class WorklensFocusExtension {
    enable() {
        const [, bytes] = Me.dir.get_child(INTERFACE_FILE).load_contents(null);
        this._exported = Gio.DBusExportedObject.wrapJSObject(
            new TextDecoder().decode(bytes), this);
        this._exported.export(Gio.DBus.session, OBJECT_PATH);
        this._nameId = Gio.bus_own_name_on_connection(
            Gio.DBus.session, BUS_NAME, Gio.BusNameOwnerFlags.NONE, null, null);
        this._window = null;
        this._titleId = 0;
        this._focusId = global.display.connect('notify::focus-window', () => this._follow());
        this._follow();
    }

    disable() {
        global.display.disconnect(this._focusId);
        this._unwatch();
        Gio.bus_unown_name(this._nameId);
        this._exported.unexport();
        this._exported = null;
    }

    // D-Bus method Get() -> (s wm_class, s title, u pid)
    Get() {
        return this._current();
    }

    _current() {
        const window = global.display.focus_window;
        if (!window)
            return ['', '', 0];
        const pid = window.get_pid();
        return [window.get_wm_class() ?? '', window.get_title() ?? '', pid > 0 ? pid : 0];
    }

    _follow() {
        this._unwatch();
        this._window = global.display.focus_window;
        if (this._window)
            this._titleId = this._window.connect('notify::title', () => this._emit());
        this._emit();
    }

    _unwatch() {
        if (this._window && this._titleId)
            this._window.disconnect(this._titleId);
        this._window = null;
        this._titleId = 0;
    }

    _emit() {
        this._exported?.emit_signal('Changed', new GLib.Variant('(ssu)', this._current()));
    }
}

function init() {
    return new WorklensFocusExtension();
}
