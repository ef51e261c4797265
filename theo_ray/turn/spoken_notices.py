"""What the agent says on its own about what it is doing (not model output), in pt-BR."""

from __future__ import annotations

# Said when the model asked for a transfer without saying anything: the caller always
# hears where (and why) before a transfer.
TRANSFER_NOTICE = "Vou te transferir para {destination}{because}. Um instante, por favor."
TRANSFER_BECAUSE = ", porque {reason}"
TRANSFER_DEFAULT_DESTINATION = "um atendente"


def transfer_notice(destination: str, reason: str) -> str:
    because = TRANSFER_BECAUSE.format(reason=reason) if reason else ""
    return TRANSFER_NOTICE.format(destination=destination or TRANSFER_DEFAULT_DESTINATION, because=because)
