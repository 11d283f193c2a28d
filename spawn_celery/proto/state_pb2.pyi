from spawn_celery.proto import actor_pb2 as _actor_pb2
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Revision(_message.Message):
    __slots__ = ("value",)
    VALUE_FIELD_NUMBER: _ClassVar[int]
    value: int
    def __init__(self, value: _Optional[int] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("revision", "state")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    revision: Revision
    state: _actor_pb2.ActorState
    def __init__(self, revision: _Optional[_Union[Revision, _Mapping]] = ..., state: _Optional[_Union[_actor_pb2.ActorState, _Mapping]] = ...) -> None: ...
