"""Words for a rights URI: the published names of the RightsStatements.org statements and of the
Creative Commons licences and tools, so a record given only ``--rights-uri`` can state its rights
for people too.  Any other URI has no known words: the statement is then left to the archivist.
"""

from __future__ import annotations

import re

#: https://rightsstatements.org/page/1.0/ - the twelve statements and their names.
_RIGHTS_STATEMENTS = {
    "InC": "In Copyright",
    "InC-OW-EU": "In Copyright - EU Orphan Work",
    "InC-EDU": "In Copyright - Educational Use Permitted",
    "InC-NC": "In Copyright - Non-Commercial Use Permitted",
    "InC-RUU": "In Copyright - Rights-holder(s) Unlocatable or Unidentifiable",
    "NoC-CR": "No Copyright - Contractual Restrictions",
    "NoC-NC": "No Copyright - Non-Commercial Use Only",
    "NoC-OKLR": "No Copyright - Other Known Legal Restrictions",
    "NoC-US": "No Copyright - United States",
    "CNE": "Copyright Not Evaluated",
    "UND": "Copyright Undetermined",
    "NKC": "No Known Copyright",
}
_CC_LICENCES = {
    "by": "Attribution", "by-sa": "Attribution-ShareAlike", "by-nd": "Attribution-NoDerivatives",
    "by-nc": "Attribution-NonCommercial", "by-nc-sa": "Attribution-NonCommercial-ShareAlike",
    "by-nc-nd": "Attribution-NonCommercial-NoDerivatives",
}
_RS = re.compile(r"^https?://rightsstatements\.org/(?:vocab|page)/([A-Za-z-]+)/(\d+\.\d+)/?$")
_CC = re.compile(r"^https?://creativecommons\.org/licenses/([a-z-]+)/(\d+\.\d+)/?$")
_CC0 = re.compile(r"^https?://creativecommons\.org/publicdomain/zero/1\.0/?$")
_PDM = re.compile(r"^https?://creativecommons\.org/publicdomain/mark/1\.0/?$")


def statement_for(uri: str) -> str | None:
    """The published English name of the statement or licence at ``uri``, or None if unknown."""
    if (found := _RS.match(uri)) and found.group(1) in _RIGHTS_STATEMENTS:
        return _RIGHTS_STATEMENTS[found.group(1)]
    if (found := _CC.match(uri)) and found.group(1) in _CC_LICENCES:
        code, version = found.group(1), found.group(2)
        return f"Creative Commons {_CC_LICENCES[code]} {version} (CC {code.upper()} {version})"
    if _CC0.match(uri):
        return "CC0 1.0 Universal (Public Domain Dedication)"
    if _PDM.match(uri):
        return "Public Domain Mark 1.0"
    return None
