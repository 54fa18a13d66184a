"""Config files (dfs/cli/configfile.py): a TOML key per option, the command line on top,
clear errors naming the key and the file, and `dfs init ROLE` listing every key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import tomllib

from dfs import errors
from dfs.cli import configfile
from dfs.cli.main import build_parser, main

TOKEN = "ab" * 32


def parse(argv: list[str]):
    parser = build_parser()
    configfile.apply(parser, argv)
    return parser.parse_args(argv)


def write(path: Path, text: str, mode: int = 0o600) -> str:
    path.write_text(text)
    path.chmod(mode)
    return str(path)


def test_a_file_gives_every_value_and_the_command_line_wins(tmp_path: Path) -> None:
    conf = write(tmp_path / "worker.toml", """
data = "worker-data"
host = "10.0.0.11"
master = "10.0.0.1:18861,10.0.0.2:18862"
token_file = "join-token"
capacity = 1000000
scrub_rate = 0
""")
    args = parse(["worker", "--config", conf])
    assert args.data == str(tmp_path / "worker-data")  # from the file's folder, not the cwd
    assert args.token_file == str(tmp_path / "join-token")
    assert (args.host, args.master, args.capacity, args.scrub_rate) == \
        ("10.0.0.11", "10.0.0.1:18861,10.0.0.2:18862", 1000000, 0)
    args = parse(["worker", "--config", conf, "--capacity", "5", "--token", TOKEN])
    assert args.capacity == 5 and args.host == "10.0.0.11"
    assert args.token == TOKEN and args.token_file == ""  # the command line chose --token


def test_floats_ints_and_flags_of_the_master(tmp_path: Path) -> None:
    conf = write(tmp_path / "m.toml", 'data = "/srv/m"\nlease = 2\ndead_after = 4.5\n'
                                      'open_registration = true\nchunk_size = 1048576\n')
    args = parse(["master", "--config", conf])
    assert args.lease == 2.0 and isinstance(args.lease, float)
    assert args.dead_after == 4.5 and args.open_registration is True
    assert args.chunk_size == 1048576 and args.data == "/srv/m"
    assert parse(["master", "--data", "/elsewhere", "--config", conf]).data == "/elsewhere"


@pytest.mark.parametrize("text, message", [
    ('data = "/d"\nchunk_sise = 4\n', "unknown key 'chunk_sise' (did you mean chunk_size?)"),
    ('data = "/d"\nflavour = 4\n', "unknown key 'flavour' (`dfs init master` lists the keys)"),
    ('data = "/d"\nlease = "long"\n', "lease must be a number, not 'long'"),
    ('data = "/d"\nchunk_size = 1.5\n', "chunk_size must be a whole number"),
    ('data = "/d"\nopen_registration = "yes"\n', "open_registration must be true or false"),
    ('data = 7\n', 'data must be a string'),
    ('data = "/d"\n[peer]\nhost = "x"\n', "peer must be a single value"),
    ('data = "/d"\ntoken = "x"\ntoken_file = "f"\n', "token_file and token exclude each other"),
    ('data = "/d\n', "is not valid TOML"),
])
def test_bad_files_name_the_key_and_the_file(tmp_path: Path, text: str, message: str) -> None:
    conf = write(tmp_path / "bad.toml", text)
    with pytest.raises(errors.InvalidArgument) as caught:
        parse(["master", "--config", conf])
    assert conf in caught.value.message and message in caught.value.message


def test_errors_are_one_line_from_the_command(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    conf = write(tmp_path / "bad.toml", 'data = "/d"\nnope = 1\n')
    assert main(["master", "--config", conf]) == 1
    assert capsys.readouterr().err == f"dfs: {conf}: unknown key 'nope' (`dfs init master` " \
                                      "lists the keys)\n"
    assert main(["worker", "--config", str(tmp_path / "missing.toml")]) == 1
    assert "missing.toml: no such config file" in capsys.readouterr().err


def test_a_token_in_a_file_others_can_read_is_refused(tmp_path: Path) -> None:
    conf = write(tmp_path / "w.toml", f'data = "/d"\nmaster = "h:1"\ntoken = "{TOKEN}"\n',
                 mode=0o644)
    with pytest.raises(errors.PermissionDenied, match="chmod 600"):
        parse(["worker", "--config", conf])
    os.chmod(conf, 0o600)
    assert parse(["worker", "--config", conf]).token == TOKEN


@pytest.mark.parametrize("role, command", [("master", "master"), ("shadow", "shadow"),
                                           ("worker", "worker"), ("mount", "mount"),
                                           ("client", "mount"), ("backup", "backup")])
def test_init_lists_every_option_and_sets_the_given_ones(tmp_path: Path, role: str,
                                                         command: str) -> None:
    parser = build_parser()
    options = configfile.keyed(configfile._commands(parser)[command])
    out = tmp_path / f"{role}.toml"
    assert main(["init", role, "--out", str(out)]) == 0
    text = out.read_text()
    for key in options:  # every option has its key, commented out with its default
        assert f"\n# {key} = " in text, key
    assert tomllib.loads(text) == {}
    given = {"master": ["--data", "m", "--host", "10.0.0.1", "--peer", "10.0.0.2:18862"],
             "shadow": ["--data", "s", "--token-file", "t", "--lease", "2"],
             "worker": ["--data", "w", "--master", "a:1,b:2", "--capacity", "9"],
             "mount": ["--auth", "a.txt", "--timeout", "5", "--foreground"],
             "backup": ["--auth", "a.txt", "--mirror-deletes"]}[command]
    assert main(["init", role, *given, "-o", str(out)]) == 1  # exists: not replaced
    assert main(["init", role, *given, "-o", str(out), "-f"]) == 0
    values = tomllib.loads(out.read_text())
    assert len(values) == len(given) - sum(g.startswith("--") for g in given) + \
        sum(g in ("--foreground", "--mirror-deletes") for g in given)
    args = parse([command, *(["/mnt"] if command == "mount" else []),
                  *(["/local"] if command == "backup" else []), "--config", str(out)])
    for key, value in values.items():
        expected = os.path.abspath(value) if key in configfile.PATH_KEYS else value
        assert getattr(args, options[key].dest) == expected, key


def test_init_keeps_the_token_out_of_the_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["init", "worker", "--token", TOKEN]) == 1
    assert "token_file" in capsys.readouterr().err
