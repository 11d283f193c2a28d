from google.protobuf import any_pb2 as _any_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    UNKNOW_KIND: _ClassVar[Kind]
    NAMED: _ClassVar[Kind]
    UNAMED: _ClassVar[Kind]
    POOLED: _ClassVar[Kind]
    PROXY: _ClassVar[Kind]
UNKNOW_KIND: Kind
NAMED: Kind
UNAMED: Kind
POOLED: Kind
PROXY: Kind

class Registry(_message.Message):
    __slots__ = ("actors",)
    class ActorsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: Actor
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[Actor, _Mapping]] = ...) -> None: ...
    ACTORS_FIELD_NUMBER: _ClassVar[int]
    actors: _containers.MessageMap[str, Actor]
    def __init__(self, actors: _Optional[_Mapping[str, Actor]] = ...) -> None: ...

class ActorSystem(_message.Message):
    __slots__ = ("name", "registry")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REGISTRY_FIELD_NUMBER: _ClassVar[int]
    name: str
    registry: Registry
    def __init__(self, name: _Optional[str] = ..., registry: _Optional[_Union[Registry, _Mapping]] = ...) -> None: ...

class ActorSnapshotStrategy(_message.Message):
    __slots__ = ("timeout",)
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    timeout: TimeoutStrategy
    def __init__(self, timeout: _Optional[_Union[TimeoutStrategy, _Mapping]] = ...) -> None: ...

class ActorDeactivationStrategy(_message.Message):
    __slots__ = ("timeout",)
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    timeout: TimeoutStrategy
    def __init__(self, timeout: _Optional[_Union[TimeoutStrategy, _Mapping]] = ...) -> None: ...

class TimeoutStrategy(_message.Message):
    __slots__ = ("timeout",)
    TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    timeout: int
    def __init__(self, timeout: _Optional[int] = ...) -> None: ...

class Action(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class FixedTimerAction(_message.Message):
    __slots__ = ("seconds", "action")
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    seconds: int
    action: Action
    def __init__(self, seconds: _Optional[int] = ..., action: _Optional[_Union[Action, _Mapping]] = ...) -> None: ...

class ActorState(_message.Message):
    __slots__ = ("tags", "state")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TAGS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.ScalarMap[str, str]
    state: _any_pb2.Any
    def __init__(self, tags: _Optional[_Mapping[str, str]] = ..., state: _Optional[_Union[_any_pb2.Any, _Mapping]] = ...) -> None: ...

class Metadata(_message.Message):
    __slots__ = ("channel_group", "tags")
    class TagsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CHANNEL_GROUP_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    channel_group: str
    tags: _containers.ScalarMap[str, str]
    def __init__(self, channel_group: _Optional[str] = ..., tags: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ActorSettings(_message.Message):
    __slots__ = ("kind", "stateful", "snapshot_strategy", "deactivation_strategy", "min_pool_size", "max_pool_size")
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATEFUL_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    DEACTIVATION_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    MIN_POOL_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_POOL_SIZE_FIELD_NUMBER: _ClassVar[int]
    kind: Kind
    stateful: bool
    snapshot_strategy: ActorSnapshotStrategy
    deactivation_strategy: ActorDeactivationStrategy
    min_pool_size: int
    max_pool_size: int
    def __init__(self, kind: _Optional[_Union[Kind, str]] = ..., stateful: _Optional[bool] = ..., snapshot_strategy: _Optional[_Union[ActorSnapshotStrategy, _Mapping]] = ..., deactivation_strategy: _Optional[_Union[ActorDeactivationStrategy, _Mapping]] = ..., min_pool_size: _Optional[int] = ..., max_pool_size: _Optional[int] = ...) -> None: ...

class ActorId(_message.Message):
    __slots__ = ("name", "system", "parent")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    name: str
    system: str
    parent: str
    def __init__(self, name: _Optional[str] = ..., system: _Optional[str] = ..., parent: _Optional[str] = ...) -> None: ...

class Actor(_message.Message):
    __slots__ = ("id", "state", "metadata", "settings", "actions", "timer_actions")
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    TIMER_ACTIONS_FIELD_NUMBER: _ClassVar[int]
    id: ActorId
    state: ActorState
    metadata: Metadata
    settings: ActorSettings
    actions: _containers.RepeatedCompositeFieldContainer[Action]
    timer_actions: _containers.RepeatedCompositeFieldContainer[FixedTimerAction]
    def __init__(self, id: _Optional[_Union[ActorId, _Mapping]] = ..., state: _Optional[_Union[ActorState, _Mapping]] = ..., metadata: _Optional[_Union[Metadata, _Mapping]] = ..., settings: _Optional[_Union[ActorSettings, _Mapping]] = ..., actions: _Optional[_Iterable[_Union[Action, _Mapping]]] = ..., timer_actions: _Optional[_Iterable[_Union[FixedTimerAction, _Mapping]]] = ...) -> None: ...
