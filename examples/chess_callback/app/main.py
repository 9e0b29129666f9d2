"""Chess judge: is the position in COMPTOIR_ARGS (FEN) checkmate, stalemate or neither?

Writes /comptoir/out/callback = verdict (32-byte big-endian integer) followed by
sha256(FEN), the 64 bytes the ChessOracle contract receives, and verdict.json for humans.
Verdicts: 1 checkmate, 2 stalemate, 3 neither, 4 invalid position.
Standard library only: bundles run with the worker's python3.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

CHECKMATE, STALEMATE, NEITHER, INVALID = 1, 2, 3, 4
KNIGHT = ((1, 2), (2, 1), (2, -1), (1, -2), (-1, -2), (-2, -1), (-2, 1), (-1, 2))
KING = ((1, 0), (1, 1), (0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1))
ROOK = ((1, 0), (-1, 0), (0, 1), (0, -1))
BISHOP = ((1, 1), (1, -1), (-1, 1), (-1, -1))

Square = tuple[int, int]  # (file 0-7, rank 0-7)
Board = dict[Square, str]  # piece letters, uppercase white


def parse(fen: str) -> tuple[Board, str, str, Square | None]:
    fields = fen.split()
    if len(fields) < 2 or fields[1] not in ("w", "b"):
        raise ValueError("need placement and side to move")
    rows = fields[0].split("/")
    if len(rows) != 8:
        raise ValueError("need 8 ranks")
    board: Board = {}
    for i, row in enumerate(rows):
        file = 0
        for ch in row:
            if ch.isdigit():
                file += int(ch)
            elif ch.lower() in "pnbrqk":
                board[(file, 7 - i)] = ch
                file += 1
            else:
                raise ValueError(f"bad piece {ch!r}")
        if file != 8:
            raise ValueError("a rank is not 8 squares")
    if sorted(p for p in board.values() if p in "Kk") != ["K", "k"]:
        raise ValueError("need one king per side")
    castling = fields[2] if len(fields) > 2 else "-"
    ep = None
    if len(fields) > 3 and fields[3] != "-":
        ep = (ord(fields[3][0]) - 97, int(fields[3][1]) - 1)
    return board, fields[1], castling, ep


def white(piece: str) -> bool:
    return piece.isupper()


def inside(sq: Square) -> bool:
    return 0 <= sq[0] < 8 and 0 <= sq[1] < 8


def attacked(board: Board, sq: Square, by_white: bool) -> bool:
    f, r = sq
    pawn_rank = -1 if by_white else 1  # attacking pawns stand one rank behind
    for df in (-1, 1):
        p = board.get((f + df, r + pawn_rank))
        if p == ("P" if by_white else "p"):
            return True
    for steps, kinds, slide in (
        (KNIGHT, "n", False),
        (KING, "k", False),
        (ROOK, "rq", True),
        (BISHOP, "bq", True),
    ):
        for df, dr in steps:
            t = (f + df, r + dr)
            while inside(t):
                p = board.get(t)
                if p is not None:
                    if white(p) == by_white and p.lower() in kinds:
                        return True
                    break
                if not slide:
                    break
                t = (t[0] + df, t[1] + dr)
    return False


def in_check(board: Board, white_side: bool) -> bool:
    king = "K" if white_side else "k"
    sq = next(s for s, p in board.items() if p == king)
    return attacked(board, sq, not white_side)


def moves(board: Board, white_side: bool, ep: Square | None) -> Iterator[Board]:
    """Pseudo-legal moves as new boards (castling is handled by the caller)."""
    for sq, piece in list(board.items()):
        if white(piece) != white_side:
            continue
        f, r = sq
        kind = piece.lower()
        if kind == "p":
            d = 1 if white_side else -1
            last = 7 if white_side else 0
            one = (f, r + d)
            if inside(one) and one not in board:
                yield _move(board, sq, one, promote=(one[1] == last))
                start = 1 if white_side else 6
                two = (f, r + 2 * d)
                if r == start and two not in board:
                    yield _move(board, sq, two)
            for df in (-1, 1):
                t = (f + df, r + d)
                target = board.get(t)
                if target is not None and white(target) != white_side:
                    yield _move(board, sq, t, promote=(t[1] == last))
                elif t == ep:
                    b = _move(board, sq, t)
                    b.pop((t[0], r), None)  # the pawn taken en passant
                    yield b
            continue
        steps = {"n": KNIGHT, "k": KING, "r": ROOK, "b": BISHOP, "q": ROOK + BISHOP}[kind]
        slide = kind in "rbq"
        for df, dr in steps:
            t = (f + df, r + dr)
            while inside(t):
                target = board.get(t)
                if target is not None and white(target) == white_side:
                    break
                yield _move(board, sq, t)
                if target is not None or not slide:
                    break
                t = (t[0] + df, t[1] + dr)


def _move(board: Board, src: Square, dst: Square, promote: bool = False) -> Board:
    b = dict(board)
    piece = b.pop(src)
    b[dst] = ("Q" if white(piece) else "q") if promote else piece
    return b


def can_castle(board: Board, white_side: bool, castling: str) -> bool:
    rank = 0 if white_side else 7
    king = "K" if white_side else "k"
    if board.get((4, rank)) != king or in_check(board, white_side):
        return False
    for right, rook_file, empty, path in (("K", 7, (5, 6), (5, 6)), ("Q", 0, (1, 2, 3), (3, 2))):
        flag = right if white_side else right.lower()
        rook = "R" if white_side else "r"
        if flag not in castling or board.get((rook_file, rank)) != rook:
            continue
        if any((f, rank) in board for f in empty):
            continue
        if not any(attacked(board, (f, rank), not white_side) for f in path):
            return True
    return False


def judge(fen: str) -> int:
    try:
        board, side, castling, ep = parse(fen)
    except (ValueError, IndexError):
        return INVALID
    white_side = side == "w"
    if in_check(board, not white_side):
        return INVALID  # the side not to move cannot be in check
    for b in moves(board, white_side, ep):
        if not in_check(b, white_side):
            return NEITHER
    if can_castle(board, white_side, castling):
        return NEITHER
    return CHECKMATE if in_check(board, white_side) else STALEMATE


def main() -> None:
    fen = os.environ.get("COMPTOIR_ARGS", "").strip()
    verdict = judge(fen)
    out = Path("/comptoir/out")
    out.mkdir(parents=True, exist_ok=True)
    (out / "callback").write_bytes(
        verdict.to_bytes(32, "big") + hashlib.sha256(fen.encode()).digest()
    )
    names = {CHECKMATE: "checkmate", STALEMATE: "stalemate", NEITHER: "neither", INVALID: "invalid"}
    (out / "verdict.json").write_text(json.dumps({"fen": fen, "verdict": names[verdict]}) + "\n")
    print(f"{fen}: {names[verdict]}")


if __name__ == "__main__":
    main()
