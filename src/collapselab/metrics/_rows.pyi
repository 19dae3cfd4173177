from typing import Any

def shift_rows(
    x: Any,
    k: int,
    d: int,
    s: Any,
    inv_s_norm: float,
    a: Any,
    sq: Any,
    wsq: Any,
    stats: bool = True,
) -> None: ...

def rank1(a: Any, n: int, lda: int, alpha: float, x: Any) -> None: ...
