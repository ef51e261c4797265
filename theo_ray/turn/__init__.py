"""Per-call turn logic: sentence splitting, VAD, turn model, endpointing, barge-in
classification, memory, prompt, tools, fillers. Pure pieces the CallActor's turn loop composes;
nothing here imports torch, and nothing blocks an event loop except where a docstring says so.
"""
