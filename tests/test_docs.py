"""Every example in the documentation runs, and every code block fits the page.

The test reads the code blocks of ``docs/**/*.rst`` (``code-block`` directives,
``::`` literal blocks and ``literalinclude``) and deals with each:

* A ``literalinclude`` of ``examples/``: a test runs the example (most are in
  ``tests/test_examples.py``); this test checks that one names it.
* A block after a comment ``.. docs-test: SESSION [server] [file=NAME]``
  belongs to the session *SESSION* of its page. The blocks of a session run in
  the order of the page, in a temporary directory of their own:

  - ``file=NAME``: the block is written to *NAME* (a program that a console
    block of the session then runs).
  - A console block: each ``$`` line is a command that ``bash -c`` runs, with
    the virtual environment of this Python first on ``PATH`` (so
    ``trio-hface`` is the real entry point and ``python`` this interpreter). Its
    output, standard output and error together as in a terminal, must be the
    lines that follow it up to the next ``$`` line (curl is told to show no
progress meter, as in a terminal); a line ``...`` stands for
    any lines, trailing spaces and CRLF line ends do not count. A command
    that exits with another status than 0 must be followed by ``echo $?``.
    ``NAME=VALUE`` sets a variable for the later commands of the session. A
    line ending with ``\\`` goes on with the next.
  - ``server``: the block's one command is a server (as is a command that
    ends with ``&`` in any console block). It runs in the background until the
    session ends, when it gets SIGINT and must exit with status 0; the lines
    after it are what it prints once it serves.

* Every other block is in :data:`SKIPPED`, with the reason it does not run
  here; a block in neither place fails the test, as does a stale entry.

The docs show the ports 6443 and 8443 and the path of a development CA,
``/home/me/.local/share/trio-hface/dev-ca/ca.pem``, as ``trio-hface server`` prints it. A
server of a session listens on port 0 instead, and what it printed in place
of those (its port, its CA) is put in their place in the later commands,
files and outputs of the session. The session's directory links
``examples/`` of the checkout, so that commands run as from a checkout.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio

from tests.peers import OUR_ENV, Peer, running_peer

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

#: The widest line of a code block, in characters. The theme's page is widened
#: for it (``page_width`` in docs/conf.py): 88 characters of the code font fit
#: in the body of alabaster at 1120 pixels, without horizontal scrolling.
CODE_WIDTH = 88

#: Lines that a program prints as they are, longer than :data:`CODE_WIDTH`, and why.
WIDE_OUTPUT = {
    "$ trio-hface server --cert cert.pem --key other-key.pem trio_hface.server.examples.hello:app https://localhost:6443": "one command or one line of output, as typed or printed (wrapped by the page CSS)",
    "trio-hface server: other-key.pem: the private key does not match the certificate in cert.pem": "one command or one line of output, as typed or printed (wrapped by the page CSS)",
    "$ trio-hface server trio_hface.server.examples.hello:app https://localhost:0 http://127.0.0.1:8080": "one command or one line of output, as typed or printed (wrapped by the page CSS)",
    "2026-12-02 07:40:01,204 INFO trio_hface.server.lifecycle: shutting down: waiting up to 10 s for 3 requests in flight": "one command or one line of output, as typed or printed (wrapped by the page CSS)",
    "$ trio-hface client -s -o /dev/null -w '%{http_code} HTTP/%{http_version} %{size_download} bytes in %{time_total} s\\n' --cacert \"$(trio-hface ca)\" https://localhost:6443/": "one command or one line of output, as typed or printed (wrapped by the page CSS)",
    "trio-hface client: https://localhost:6444/: cannot open an HTTP/3 connection to localhost: nobody listens at UDP port 6444 of 127.0.0.1": "one command or one line of output, as typed or printed (wrapped by the page CSS)",
    "development certificate for localhost, 127.0.0.1 and ::1; trust its CA: "
    "/home/me/.local/share/trio-hface/dev-ca/ca.pem": "the CA line of trio-hface server, printed as one line",
    "trio-hface client: https://localhost:6443/: cannot connect to localhost:6443: TLS "
    "handshake failed ([SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable "
    "to get local issuer certificate (_ssl.c:1006))": "an error of trio-hface client, one line",
    "HTTP/3 datagrams reach their worker by kernel (SO_ATTACH_REUSEPORT_CBPF by the "
    "connection ID's first octet)": "the steering line of the worker supervisor, one line",
    "trio-hface client: https://localhost:6444/: the proxy refused CONNECT localhost:6444: "
    "403 localhost:6444 is not an allowed destination": "an error of trio-hface client, one line",
    "trio-hface server: HTTP/3 needs TLS: use https://, not http://127.0.0.1:8080": (
        "an error of trio-hface server, one line"
    ),
}

#: The blocks that do not run here, by page and first line, and why.
SKIPPED = {
    (
        "cli.rst",
        "$ trio-hface server --cert cert.pem --key other-key.pem trio_hface.server.examples.hello:app https://localhost:6443",
    ): "tests/test_cli_startup.py runs it through the real entry point",
    (
        "cli.rst",
        "$ trio-hface server trio_hface.server.examples.hello:app https://localhost:0 http://127.0.0.1:8080",
    ): "tests/test_cli_startup.py runs it through the real entry point",
    (
        "cli.rst",
        "$ trio-hface server trio_hface.server.examples.hello:app https://127.0.0.1:6443",
    ): "tests/test_cli_startup.py runs it through the real entry point (a port in use)",
    (
        "cli.rst",
        "2026-12-02 07:40:01,204 INFO trio_hface.server.lifecycle: shutting down: waiting up to 10 s for 3 requests in flight",
    ): "log output; tests/test_cli_server_options.py runs it through the real entry point",
    (
        "cli.rst",
        'app = "myapp:app"',
    ): "a configuration file; tests/test_cli_server_options.py runs it through the real entry point (test_the_documented_config_file_is_valid)",
    (
        "cli.rst",
        "$ trio-hface server -c trio-hface.toml",
    ): "tests/test_cli_server_options.py runs it through the real entry point",
    (
        "cli.rst",
        "[#########           ]  45%  22.5 MiB of 50.0 MiB  12.3 MiB/s  big.bin",
    ): "progress output; tests/test_cli_client.py runs it through the real entry point",
    (
        "cli.rst",
        "$ trio-hface client -s -o /dev/null -w '%{http_code} HTTP/%{http_version} %{size_download} bytes in %{time_total} s\\n' --cacert \"$(trio-hface ca)\" https://localhost:6443/",
    ): "tests/test_cli_client.py runs it through the real entry point",
    ("cli.rst", "trio-hface ca [--dev-ca-dir DIR] [--write FILE]"): "a usage synopsis",
    ("cli.rst", "$ trio-hface ca"): "tests/test_cli_startup.py runs it through the real entry point",
    (
        "facade.rst",
        "from trio_hface.server import ASGIServer, DevelopmentCA, development_tls_config",
    ): "a fragment (no app); tests/server/test_devcerts.py tests the helpers",
    ("quickstart.rst", "$ python3 -m venv .venv"): "installs the package: the suite runs installed",
    ("quickstart.rst", "$ pip wheel --no-deps -w dist ."): "builds and installs a wheel (slow)",
    ("install.rst", "$ python3 -m venv .venv"): "installs the package: the suite runs installed",
    ("install.rst", "$ pip wheel --no-deps -w dist ."): "builds and installs a wheel (slow)",
    ("install.rst", "$ pip install -e '.[speedups,qh3,test,docs,bench]'"): "installs the package",
    ("install.rst", "$ .venv/bin/sphinx-build -W -b html docs docs/_build/html"): (
        ".ci/run builds the documentation with -W"
    ),
    ("install.rst", "$ .venv/bin/python bench/run.py --quick"): ".ci/run runs the quick benchmark",
    ("cli.rst", "trio-hface server [options] APP ENDPOINT [ENDPOINT ...]"): "a usage synopsis",
    ("cli.rst", "trio-hface client [options] URL [URL ...]"): "a usage synopsis",
    ("cli.rst", "trio-hface proxy [options] ENDPOINT [ENDPOINT ...]"): "a usage synopsis",
    ("facade.rst", "config = ServerConfig(tls_config=tls, idle_timeout=30)"): (
        "a fragment (no app, no tls); tests/server test ServerConfig"
    ),
    ("facade.rst", "$ python examples/make_certs.py"): "tests/test_examples.py runs the examples",
    ("facade.rst", "$ python examples/client.py"): "tests/test_examples.py runs the examples",
    ("facade.rst", "$ python examples/proxy_server.py"): "tests/test_examples.py runs the examples",
    ("facade.rst", "$ python examples/proxy_client.py"): "tests/test_examples.py runs the examples",
    ("connections.rst", "$ python examples/make_certs.py"): ("tests/test_examples.py runs the examples"),
    ("connections.rst", "$ python examples/custom_server.py --http2 &"): (
        "tests/test_examples.py runs the examples"
    ),
    ("protocols.rst", "from trio_hface.protocols import protocol_registry"): (
        "a fragment (no app); tests/protocols test the registry"
    ),
    ("protocols.rst", "["): "a data structure, not a program",
    ("protocols.rst", '[(b":status", b"200"), (b"content-type", b"text/html")]'): (
        "a data structure, not a program"
    ),
    ("production.rst", "trio-hface server --workers 4 myapp:app https://0.0.0.0:443 http://0.0.0.0:80"): (
        "ports 443 and 80 on every address; tests/server test the workers"
    ),
    ("production.rst", "import trio"): "a fragment (myapp, tls_config=...); tests/server test it",
    (
        "production.rst",
        "HTTP/3 datagrams reach their worker by kernel (SO_ATTACH_REUSEPORT_CBPF by the connection ID's first octet)",
    ): ("output of the supervisor, not a command"),
    ("production.rst", "# machine 1"): "two machines, on port 443",
}


# -- reading the blocks --------------------------------------------------------


@dataclass
class Block:
    """A code block of a page: its kind, language, text and how the page asks to run it."""

    page: str
    line: int  # of the directive, 1-based
    kind: str  # "code-block", "literal" or "literalinclude"
    language: str
    lines: list[str]
    marker: str | None = None  # the text after ".. docs-test:"
    target: str = ""  # the file of a literalinclude

    @property
    def key(self) -> tuple[str, str]:
        return (self.page, self.lines[0] if self.lines else self.target)

    def __str__(self) -> str:
        return f"{self.page}:{self.line}"


DIRECTIVE = re.compile(
    r"^(?P<indent>\s*)\.\. (?P<name>code-block|code|sourcecode|literalinclude)::\s*(?P<arg>\S*)"
)
MARKER = re.compile(r"^\s*\.\. docs-test:\s*(?P<text>.*?)\s*$")


def read_blocks(path: Path) -> list[Block]:
    """The code blocks of one page, in order."""
    text = path.read_text().splitlines()
    page = str(path.relative_to(DOCS))
    blocks = []
    marker: str | None = None
    index = 0
    while index < len(text):
        line = text[index]
        if found := MARKER.match(line):
            marker = found.group("text")
            index += 1
            continue
        directive = DIRECTIVE.match(line)
        literal = not directive and line.rstrip().endswith("::") and not line.lstrip().startswith("..")
        if not directive and not literal:
            if line.strip() and not line.lstrip().startswith(".."):
                marker = None  # a marker belongs to the block right after it
            index += 1
            continue
        indent = len(line) - len(line.lstrip())
        start = index + 1
        if directive:
            while start < len(text) and re.match(r"^\s+:\S+:", text[start]):
                start += 1  # the directive's options
        body, index = _indented(text, start, indent)
        if directive and directive.group("name") == "literalinclude":
            block = Block(page, start, "literalinclude", "python", [], target=directive.group("arg"))
        elif directive:
            block = Block(page, start, "code-block", directive.group("arg") or "python", body, marker)
        else:
            block = Block(page, start, "literal", "python", body, marker)
        if block.kind == "literalinclude" or block.lines:
            blocks.append(block)
        marker = None
    return blocks


def _indented(text: list[str], start: int, indent: int) -> tuple[list[str], int]:
    """The lines indented deeper than *indent* from *start* on (dedented), and where they end."""
    index = start
    while index < len(text) and (not text[index].strip() or _depth(text[index]) > indent):
        index += 1
    body = text[start:index]
    while body and not body[-1].strip():
        body.pop()
    while body and not body[0].strip():
        body.pop(0)
    depth = min((_depth(line) for line in body if line.strip()), default=0)
    return [line[depth:] for line in body], index


def _depth(line: str) -> int:
    return len(line) - len(line.lstrip())


def all_blocks() -> list[Block]:
    return [block for path in sorted(DOCS.rglob("*.rst")) for block in read_blocks(path)]


# -- running the sessions ------------------------------------------------------

#: What the docs show, and what the test learns from the servers it starts.
PORTS = ("6443", "8443")
CAFILE = "/home/me/.local/share/trio-hface/dev-ca/ca.pem"
ASSIGNMENT = re.compile(r"^(?P<name>[A-Za-z_]\w*)=(?P<value>\S+)$")
#: How long one command of the docs may take.
COMMAND_TIMEOUT = 60


@dataclass
class Command:
    text: str
    output: list[str]


def commands(block: Block) -> list[Command]:
    """The ``$`` commands of a console block and the output under each."""
    found: list[Command] = []
    continued = False
    for line in block.lines:
        if continued:
            found[-1].text = found[-1].text[:-1] + line.strip()
        elif line.startswith("$ "):
            found.append(Command(line[2:], []))
        elif found:
            found[-1].output.append(line)
        else:
            raise AssertionError(f"{block}: output before the first command: {line!r}")
        continued = line.endswith("\\")
    return found


@dataclass
class Session:
    """The state of one session: its directory, servers, variables and what they printed."""

    directory: Path
    stack: contextlib.AsyncExitStack
    learned: dict[str, str] = field(default_factory=dict)  # what the docs show -> what it is
    variables: dict[str, str] = field(default_factory=dict)
    servers: list[Peer] = field(default_factory=list)
    status: int = 0
    checked: bool = True  # the last status was 0 or was shown by echo $?

    def substitute(self, text: str, *, unbound_port: str | None = None) -> str:
        for shown, real in self.learned.items():
            text = text.replace(shown, real)
        if unbound_port is not None:
            for port in PORTS:
                if port not in self.learned:
                    text = text.replace(port, unbound_port)
        return text

    @property
    def env(self) -> dict[str, str]:
        bindir = os.path.dirname(sys.executable)
        path = bindir + os.pathsep + os.environ["PATH"]
        return {**OUR_ENV, **self.variables, "PATH": path, "CURL_HOME": str(self.directory)}


def expected_pattern(lines: list[str], session: Session) -> re.Pattern[str]:
    """A regular expression for output *lines*: ``...`` for any lines, placeholders captured."""
    parts = []
    defined: set[str] = set()  # the port groups that an earlier line of the output captures
    for line in lines:
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
            continue
        part = re.escape(session.substitute(line.rstrip()))
        for index, port in enumerate(PORTS):
            if port not in session.learned:
                if port in part and f"port{index}" not in defined:
                    part = part.replace(port, f"(?P<port{index}>\\d+)", 1)
                    defined.add(f"port{index}")
                part = part.replace(port, f"(?P=port{index})")
        if CAFILE not in session.learned:
            part = part.replace(re.escape(CAFILE), r"(?P<cafile>\S+)", 1)
        parts.append(part + r"[ \t]*\n")
    return re.compile("".join(parts))


def learn(session: Session, match: re.Match[str]) -> None:
    for index, port in enumerate(PORTS):
        if match.groupdict().get(f"port{index}"):
            session.learned[port] = match.group(f"port{index}")
    if match.groupdict().get("cafile"):
        session.learned[CAFILE] = match.group("cafile")


def normalise(output: bytes) -> str:
    text = output.decode(errors="replace").replace("\r\n", "\n")
    return "".join(line.rstrip() + "\n" for line in text.splitlines())


async def run_command(session: Session, command: Command, block: Block) -> None:
    text = session.substitute(command.text)
    if text == "echo $?":
        output = f"{session.status}\n"
        session.checked = True
    else:
        assert session.checked, f"{block}: a command exited with {session.status}, and no echo $? shows it"
        if assigned := ASSIGNMENT.match(text):
            script = f'{text}; printf %s "${assigned.group("name")}"'
        else:
            script = text
        with trio.fail_after(COMMAND_TIMEOUT):
            result = await trio.run_process(
                ["bash", "-c", script],
                cwd=session.directory,
                env=session.env,
                capture_stdout=True,
                stderr=subprocess.STDOUT,
                check=False,
            )
        session.status = result.returncode
        session.checked = result.returncode == 0
        if assigned:
            session.variables[assigned.group("name")] = result.stdout.decode()
            assert result.returncode == 0, f"{block}: {text!r} exited with {result.returncode}"
            return
        output = normalise(result.stdout)
    pattern = expected_pattern(command.output, session)
    match = pattern.fullmatch(output)
    assert match, f"{block}: {text!r} printed\n{output}\nnot\n" + "\n".join(command.output)
    learn(session, match)


async def start_server(session: Session, command: Command, block: Block) -> None:
    text = session.substitute(command.text.removesuffix("&").rstrip(), unbound_port="0")
    pattern = expected_pattern(command.output, session)
    server = await session.stack.enter_async_context(
        running_peer(
            ["bash", "-c", f"exec {text}"], ready=pattern.pattern, cwd=session.directory, env=session.env
        )
    )
    assert server.match is not None
    match = pattern.search(server.output.decode(errors="replace").replace("\r\n", "\n"))
    assert match, f"{block}: {text!r} printed {server.text()!r}"
    learn(session, match)
    session.servers.append(server)


async def run_session(blocks: list[Block], directory: Path) -> None:
    (directory / "examples").symlink_to(ROOT / "examples")  # as in a checkout
    # curl shows no progress meter in a terminal; through a pipe it would
    (directory / ".curlrc").write_text("no-progress-meter\n")
    async with contextlib.AsyncExitStack() as stack:
        session = Session(directory, stack)
        for block in blocks:
            words = block.marker.split() if block.marker else []
            files = [word.removeprefix("file=") for word in words if word.startswith("file=")]
            if files:
                (name,) = files
                text = session.substitute("\n".join(block.lines) + "\n", unbound_port="0")
                (directory / name).write_text(text)
            elif "server" in words:
                (command,) = commands(block)
                await start_server(session, command, block)
            else:
                for command in commands(block):
                    if command.text.endswith("&"):
                        await start_server(session, command, block)
                    else:
                        await run_command(session, command, block)
        assert session.checked, f"the session ended with a status of {session.status} that no echo $? shows"
        for server in session.servers:
            assert await server.stop(signal.SIGINT) == 0, f"{server.process.args!r}: a graceful stop exits 0"


def sessions() -> dict[str, list[Block]]:
    found: dict[str, list[Block]] = {}
    for block in all_blocks():
        if block.marker:
            name = f"{block.page}:{block.marker.split()[0]}"
            found.setdefault(name, []).append(block)
    return found


# -- the tests -----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(sessions()))
async def test_docs_session_runs(name: str, tmp_path: Path) -> None:
    """The commands and programs of one session of a docs page run and print what the page shows."""
    await run_session(sessions()[name], tmp_path)


def test_every_block_runs_or_is_skipped_with_a_reason() -> None:
    """Each code block of the docs runs in a session, is an example that a test runs, or is in SKIPPED."""
    tests = "\n".join(
        path.read_text() for path in (ROOT / "tests").rglob("test_*.py") if path.name != "test_docs.py"
    )
    unhandled = []
    used = set()
    for block in all_blocks():
        if block.kind == "literalinclude":
            name = Path(block.target).name
            assert block.target.lstrip("./").startswith("examples/"), f"{block}: {block.target}"
            runs = f'"{name}"' in tests or f"from examples.{Path(name).stem} import" in tests
            assert runs, f"{block}: no test under tests/ runs {block.target}"
        elif block.marker:
            assert block.language in ("console", "python", "toml"), f"{block}: {block.language}"
        elif block.key in SKIPPED:
            used.add(block.key)
        else:
            unhandled.append(f"{block}: {block.key[1]!r}")
    assert not unhandled, "blocks that neither run nor are in SKIPPED:\n" + "\n".join(unhandled)
    assert set(SKIPPED) <= used, f"stale entries in SKIPPED: {set(SKIPPED) - used}"


def test_code_blocks_fit_the_page() -> None:
    """No line of a code block (or of an included example) is wider than CODE_WIDTH."""
    wide = []
    for block in all_blocks():
        if block.kind == "literalinclude":
            path = (DOCS / block.page).parent / block.target
            lines = path.read_text().splitlines()
        else:
            lines = block.lines
        for line in lines:
            if len(line) > CODE_WIDTH and line.strip() not in WIDE_OUTPUT:
                wide.append(f"{block}: {len(line)}: {line}")
    assert not wide, f"lines wider than {CODE_WIDTH}:\n" + "\n".join(wide)


def test_the_block_reader_finds_every_kind() -> None:
    """The reader sees directives with options, literal blocks, includes and markers (so the other tests can fail)."""
    page = DOCS / "quickstart.rst"
    blocks = read_blocks(page)
    assert {block.kind for block in all_blocks()} == {"code-block", "literal", "literalinclude"}
    markers = [block.marker for block in blocks if block.marker]
    assert "cli server" in markers and "library file=server.py" in markers
    server = next(block for block in blocks if block.marker == "library file=server.py")
    assert server.lines[0] == "import signal" and server.lines[-1] == "trio.run(main)"


def _iter_markers() -> Iterator[tuple[str, int, str]]:
    for path in sorted(DOCS.rglob("*.rst")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if found := MARKER.match(line):
                yield str(path.relative_to(DOCS)), number, found.group("text")


def test_every_marker_is_on_a_block() -> None:
    """A docs-test comment that no code block follows (a typo, a moved block) fails instead of being ignored."""
    marked = {(block.page, block.marker) for block in all_blocks() if block.marker}
    stray = [
        f"{page}:{number}: {text}" for page, number, text in _iter_markers() if (page, text) not in marked
    ]
    assert not stray, "docs-test comments without a block:\n" + "\n".join(stray)
