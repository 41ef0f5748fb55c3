"""Fixed names in a forge repository (no imports: cheap for hooks and fast paths)."""

KAVI_DIR = ".kavi"
CONFIG_FILE = f"{KAVI_DIR}/config.yaml"
POLICY_FILE = f"{KAVI_DIR}/policy.yaml"
SIGNERS_FILE = f"{KAVI_DIR}/allowed_signers"
GOVERNANCE_FILES = (CONFIG_FILE, POLICY_FILE, SIGNERS_FILE)

SECRET_ENV_PREFIX = "KAVI_SECRET_"
