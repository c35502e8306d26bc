"""The timeout enforcer sidecar: aborts live migrations that overrun (DESIGN "Timeout enforcer").

decisions (pure verdicts), progress (Prometheus / virt-handler sources), leader (Lease election),
actions (events, annotation, UID-preconditioned delete), runner (the loop), serve (the command).
"""
