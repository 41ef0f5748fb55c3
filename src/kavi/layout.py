"""Fixed names in a forge repository (no imports: cheap for hooks and fast paths)."""

KAVI_DIR = ".kavi"
CONFIG_FILE = f"{KAVI_DIR}/config.yaml"
POLICY_FILE = f"{KAVI_DIR}/policy.yaml"
SIGNERS_FILE = f"{KAVI_DIR}/allowed_signers"
GOVERNANCE_FILES = (CONFIG_FILE, POLICY_FILE, SIGNERS_FILE)

SECRET_ENV_PREFIX = "KAVI_SECRET_"

# Files and directories through which a repository configures or instructs a coding agent
# (Claude Code, Codex, Gemini, Cursor, Copilot, Windsurf, Cline, Roo, Continue, Aider,
# Amazon Q, Junie, Kiro…): hooks that run commands, MCP servers that are started, an
# ``env`` that redirects the API and its key, text that joins the prompt. Anyone who can
# push an ordinary commit could write them, so they never reach a build sandbox: Kavi
# withholds them (they stay in the build commit, untouched; see D038). Names are compared
# without regard to case, at any depth.
AGENT_CONFIG_DIRS = frozenset(
    {
        ".claude",
        ".codex",
        ".gemini",
        ".cursor",
        ".windsurf",
        ".clinerules",
        ".roo",
        ".continue",
        ".amazonq",
        ".junie",
        ".kiro",
        ".openhands",
        ".aider.tags.cache.v3",
    }
)
AGENT_CONFIG_FILES = frozenset(
    {
        "claude.md",
        "claude.local.md",
        "agents.md",
        "agent.md",
        "gemini.md",
        ".mcp.json",
        ".cursorrules",
        ".cursorignore",
        ".cursorindexingignore",
        ".windsurfrules",
        ".clinerules",
        ".roomodes",
        ".aider.conf.yml",
        ".aiderignore",
        ".goosehints",
    }
)
# Paths (relative, lower-case) that are agent configuration only where they are.
AGENT_CONFIG_PATHS = (
    ".github/copilot-instructions.md",
    ".github/instructions/",
    ".github/prompts/",
    ".github/chatmodes/",
    ".github/agents/",
    ".vscode/mcp.json",
)


def is_agent_config(rel: str) -> bool:
    """Is the repository path ``rel`` (``/``-separated) agent configuration?"""
    folded = rel.lower()
    parts = folded.split("/")
    if parts[-1] in AGENT_CONFIG_FILES or any(p in AGENT_CONFIG_DIRS for p in parts):
        return True
    return any(
        folded == p.rstrip("/") or (p.endswith("/") and folded.startswith(p)) for p in AGENT_CONFIG_PATHS
    )
