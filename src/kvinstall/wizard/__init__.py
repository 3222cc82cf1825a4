"""The `kvinstall init` wizard: questions -> a validated Config, with a review screen.

The flow works on a plain dict in the YAML shape of the config (camelCase keys), so that values of an
existing file that the wizard does not ask about (`--from`) survive untouched.

- prompts.py: the prompts adapter (questionary) and what every step gets;
- validators.py: answer validators, run while an answer is typed;
- hosts.py: the hosts step, host import from CSV/YAML, the host-key check;
- steps.py: the other steps; flow.py: the order of the steps and the review screen;
- starter.py: the starter file of `init --defaults`.

questionary and paramiko are imported inside the functions that use them, so that importing this
package (and `kvinstall --help`) stays light.
"""

from kvinstall.wizard.flow import STEPS, review, run
from kvinstall.wizard.hosts import hoist_ssh, parse_hosts_file
from kvinstall.wizard.prompts import UI, Ctx, QuestionaryUI
from kvinstall.wizard.starter import STARTER_HEADER, starter_config, starter_yaml

__all__ = [
    "STARTER_HEADER",
    "STEPS",
    "UI",
    "Ctx",
    "QuestionaryUI",
    "hoist_ssh",
    "parse_hosts_file",
    "review",
    "run",
    "starter_config",
    "starter_yaml",
]
