from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ActivityState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTIVITY_STATE_UNSPECIFIED: _ClassVar[ActivityState]
    ACTIVITY_STATE_ACTIVE: _ClassVar[ActivityState]
    ACTIVITY_STATE_IDLE: _ClassVar[ActivityState]
    ACTIVITY_STATE_LOCKED: _ClassVar[ActivityState]
    ACTIVITY_STATE_ASLEEP: _ClassVar[ActivityState]
    ACTIVITY_STATE_PASSIVE: _ClassVar[ActivityState]

class PassiveReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PASSIVE_REASON_UNSPECIFIED: _ClassVar[PassiveReason]
    PASSIVE_REASON_MEDIA: _ClassVar[PassiveReason]
    PASSIVE_REASON_CALL: _ClassVar[PassiveReason]
    PASSIVE_REASON_INHIBITOR: _ClassVar[PassiveReason]
    PASSIVE_REASON_RULE: _ClassVar[PassiveReason]
ACTIVITY_STATE_UNSPECIFIED: ActivityState
ACTIVITY_STATE_ACTIVE: ActivityState
ACTIVITY_STATE_IDLE: ActivityState
ACTIVITY_STATE_LOCKED: ActivityState
ACTIVITY_STATE_ASLEEP: ActivityState
ACTIVITY_STATE_PASSIVE: ActivityState
PASSIVE_REASON_UNSPECIFIED: PassiveReason
PASSIVE_REASON_MEDIA: PassiveReason
PASSIVE_REASON_CALL: PassiveReason
PASSIVE_REASON_INHIBITOR: PassiveReason
PASSIVE_REASON_RULE: PassiveReason

class HostInfo(_message.Message):
    __slots__ = ("hostname", "os", "os_version", "user", "agent_version")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    OS_VERSION_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    os: str
    os_version: str
    user: str
    agent_version: str
    def __init__(self, hostname: _Optional[str] = ..., os: _Optional[str] = ..., os_version: _Optional[str] = ..., user: _Optional[str] = ..., agent_version: _Optional[str] = ...) -> None: ...

class EnrollRequest(_message.Message):
    __slots__ = ("secret", "host", "install_id")
    SECRET_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    INSTALL_ID_FIELD_NUMBER: _ClassVar[int]
    secret: str
    host: HostInfo
    install_id: str
    def __init__(self, secret: _Optional[str] = ..., host: _Optional[_Union[HostInfo, _Mapping]] = ..., install_id: _Optional[str] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("agent_id", "credential")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    credential: str
    def __init__(self, agent_id: _Optional[str] = ..., credential: _Optional[str] = ...) -> None: ...

class HelloRequest(_message.Message):
    __slots__ = ("host",)
    HOST_FIELD_NUMBER: _ClassVar[int]
    host: HostInfo
    def __init__(self, host: _Optional[_Union[HostInfo, _Mapping]] = ...) -> None: ...

class HelloResponse(_message.Message):
    __slots__ = ("agent_id", "server_time_ms", "last_sequence", "batch_packing", "packing_extensions")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_MS_FIELD_NUMBER: _ClassVar[int]
    LAST_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    BATCH_PACKING_FIELD_NUMBER: _ClassVar[int]
    PACKING_EXTENSIONS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    server_time_ms: int
    last_sequence: int
    batch_packing: str
    packing_extensions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, agent_id: _Optional[str] = ..., server_time_ms: _Optional[int] = ..., last_sequence: _Optional[int] = ..., batch_packing: _Optional[str] = ..., packing_extensions: _Optional[_Iterable[str]] = ...) -> None: ...

class WindowSpan(_message.Message):
    __slots__ = ("start_ms", "duration_ms", "app", "title", "pid", "exe", "excluded", "continued", "same_window")
    START_MS_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    APP_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    EXE_FIELD_NUMBER: _ClassVar[int]
    EXCLUDED_FIELD_NUMBER: _ClassVar[int]
    CONTINUED_FIELD_NUMBER: _ClassVar[int]
    SAME_WINDOW_FIELD_NUMBER: _ClassVar[int]
    start_ms: int
    duration_ms: int
    app: str
    title: str
    pid: int
    exe: str
    excluded: bool
    continued: bool
    same_window: bool
    def __init__(self, start_ms: _Optional[int] = ..., duration_ms: _Optional[int] = ..., app: _Optional[str] = ..., title: _Optional[str] = ..., pid: _Optional[int] = ..., exe: _Optional[str] = ..., excluded: _Optional[bool] = ..., continued: _Optional[bool] = ..., same_window: _Optional[bool] = ...) -> None: ...

class ActivitySpan(_message.Message):
    __slots__ = ("start_ms", "duration_ms", "state", "key_presses", "clicks", "mouse_moves", "scrolls", "continued", "reason")
    START_MS_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    KEY_PRESSES_FIELD_NUMBER: _ClassVar[int]
    CLICKS_FIELD_NUMBER: _ClassVar[int]
    MOUSE_MOVES_FIELD_NUMBER: _ClassVar[int]
    SCROLLS_FIELD_NUMBER: _ClassVar[int]
    CONTINUED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    start_ms: int
    duration_ms: int
    state: ActivityState
    key_presses: int
    clicks: int
    mouse_moves: int
    scrolls: int
    continued: bool
    reason: PassiveReason
    def __init__(self, start_ms: _Optional[int] = ..., duration_ms: _Optional[int] = ..., state: _Optional[_Union[ActivityState, str]] = ..., key_presses: _Optional[int] = ..., clicks: _Optional[int] = ..., mouse_moves: _Optional[int] = ..., scrolls: _Optional[int] = ..., continued: _Optional[bool] = ..., reason: _Optional[_Union[PassiveReason, str]] = ...) -> None: ...

class ProcessSample(_message.Message):
    __slots__ = ("time_ms", "pid", "name", "user", "cpu_percent", "rss_bytes", "cpu_seconds", "interval_ms")
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    RSS_BYTES_FIELD_NUMBER: _ClassVar[int]
    CPU_SECONDS_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    time_ms: int
    pid: int
    name: str
    user: str
    cpu_percent: float
    rss_bytes: int
    cpu_seconds: float
    interval_ms: int
    def __init__(self, time_ms: _Optional[int] = ..., pid: _Optional[int] = ..., name: _Optional[str] = ..., user: _Optional[str] = ..., cpu_percent: _Optional[float] = ..., rss_bytes: _Optional[int] = ..., cpu_seconds: _Optional[float] = ..., interval_ms: _Optional[int] = ...) -> None: ...

class ProcessSnapshot(_message.Message):
    __slots__ = ("time_ms", "interval_ms", "rss_unit", "cpu_decimals", "entries")
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    RSS_UNIT_FIELD_NUMBER: _ClassVar[int]
    CPU_DECIMALS_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    time_ms: int
    interval_ms: int
    rss_unit: int
    cpu_decimals: int
    entries: _containers.RepeatedCompositeFieldContainer[ProcessEntry]
    def __init__(self, time_ms: _Optional[int] = ..., interval_ms: _Optional[int] = ..., rss_unit: _Optional[int] = ..., cpu_decimals: _Optional[int] = ..., entries: _Optional[_Iterable[_Union[ProcessEntry, _Mapping]]] = ...) -> None: ...

class ProcessEntry(_message.Message):
    __slots__ = ("pid", "name", "user", "rss", "cpu", "cpu_percent", "rss_change", "recent")
    PID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    RSS_FIELD_NUMBER: _ClassVar[int]
    CPU_FIELD_NUMBER: _ClassVar[int]
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    RSS_CHANGE_FIELD_NUMBER: _ClassVar[int]
    RECENT_FIELD_NUMBER: _ClassVar[int]
    pid: int
    name: str
    user: str
    rss: int
    cpu: int
    cpu_percent: float
    rss_change: int
    recent: int
    def __init__(self, pid: _Optional[int] = ..., name: _Optional[str] = ..., user: _Optional[str] = ..., rss: _Optional[int] = ..., cpu: _Optional[int] = ..., cpu_percent: _Optional[float] = ..., rss_change: _Optional[int] = ..., recent: _Optional[int] = ...) -> None: ...

class SystemTotals(_message.Message):
    __slots__ = ("time_ms", "cpu_percent", "mem_total_bytes", "mem_used_bytes", "process_count", "cpu_count")
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    CPU_PERCENT_FIELD_NUMBER: _ClassVar[int]
    MEM_TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    MEM_USED_BYTES_FIELD_NUMBER: _ClassVar[int]
    PROCESS_COUNT_FIELD_NUMBER: _ClassVar[int]
    CPU_COUNT_FIELD_NUMBER: _ClassVar[int]
    time_ms: int
    cpu_percent: float
    mem_total_bytes: int
    mem_used_bytes: int
    process_count: int
    cpu_count: int
    def __init__(self, time_ms: _Optional[int] = ..., cpu_percent: _Optional[float] = ..., mem_total_bytes: _Optional[int] = ..., mem_used_bytes: _Optional[int] = ..., process_count: _Optional[int] = ..., cpu_count: _Optional[int] = ...) -> None: ...

class Batch(_message.Message):
    __slots__ = ("agent_id", "sequence", "host", "created_ms", "windows", "activity", "processes", "system", "dropped_events", "packed", "process_snapshots", "spool_batches", "spool_bytes", "flush_interval_ms")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    CREATED_MS_FIELD_NUMBER: _ClassVar[int]
    WINDOWS_FIELD_NUMBER: _ClassVar[int]
    ACTIVITY_FIELD_NUMBER: _ClassVar[int]
    PROCESSES_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    DROPPED_EVENTS_FIELD_NUMBER: _ClassVar[int]
    PACKED_FIELD_NUMBER: _ClassVar[int]
    PROCESS_SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    SPOOL_BATCHES_FIELD_NUMBER: _ClassVar[int]
    SPOOL_BYTES_FIELD_NUMBER: _ClassVar[int]
    FLUSH_INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    sequence: int
    host: HostInfo
    created_ms: int
    windows: _containers.RepeatedCompositeFieldContainer[WindowSpan]
    activity: _containers.RepeatedCompositeFieldContainer[ActivitySpan]
    processes: _containers.RepeatedCompositeFieldContainer[ProcessSample]
    system: _containers.RepeatedCompositeFieldContainer[SystemTotals]
    dropped_events: int
    packed: bytes
    process_snapshots: _containers.RepeatedCompositeFieldContainer[ProcessSnapshot]
    spool_batches: int
    spool_bytes: int
    flush_interval_ms: int
    def __init__(self, agent_id: _Optional[str] = ..., sequence: _Optional[int] = ..., host: _Optional[_Union[HostInfo, _Mapping]] = ..., created_ms: _Optional[int] = ..., windows: _Optional[_Iterable[_Union[WindowSpan, _Mapping]]] = ..., activity: _Optional[_Iterable[_Union[ActivitySpan, _Mapping]]] = ..., processes: _Optional[_Iterable[_Union[ProcessSample, _Mapping]]] = ..., system: _Optional[_Iterable[_Union[SystemTotals, _Mapping]]] = ..., dropped_events: _Optional[int] = ..., packed: _Optional[bytes] = ..., process_snapshots: _Optional[_Iterable[_Union[ProcessSnapshot, _Mapping]]] = ..., spool_batches: _Optional[int] = ..., spool_bytes: _Optional[int] = ..., flush_interval_ms: _Optional[int] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ("sequence", "duplicate")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    duplicate: bool
    def __init__(self, sequence: _Optional[int] = ..., duplicate: _Optional[bool] = ...) -> None: ...
