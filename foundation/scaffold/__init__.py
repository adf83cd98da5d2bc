"""Scaffolding: `foundation init DIR` (a working platform workspace) and `foundation usecase new NAME` (a skeleton).

`render` is pure (answers in, {relative path: content} out); `writer` is the only module that touches the disk,
and it never overwrites a file that exists.
"""
