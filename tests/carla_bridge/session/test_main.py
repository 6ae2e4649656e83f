"""The check command, ``python -m carla_bridge.session``."""

from __future__ import annotations

from carla_bridge.session import SessionRecorder
from carla_bridge.session.__main__ import main
from support.sessions import SIZE, drive, small_session


def test_the_check_command(tmp_path, capsys):
    path = small_session(tmp_path, n=3)
    assert main([str(path), "--load"]) == 0
    assert "3 frames, 96x48" in capsys.readouterr().out
    (path / "labels" / "000002.png").write_bytes(b"\x89PNG broken")
    assert main([str(path)]) == 0  # files are only opened with --load
    assert main([str(path), "--load"]) == 1
    assert "000002.png: cannot be read" in capsys.readouterr().err


def test_a_folder_of_sessions_points_to_the_sessions_inside(tmp_path, capsys):
    root = tmp_path / "sessions"
    for stamp in ("20250101-120000", "20250102-090000"):  # as the R key names them
        with SessionRecorder(root / stamp, {}, size=SIZE, video=False) as rec:
            drive(rec, 1)
    assert main([str(root)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a folder of 2 sessions (20250101-120000, 20250102-090000)" in err, err
    assert f"e.g. {root / '20250102-090000'} (the latest)" in err
