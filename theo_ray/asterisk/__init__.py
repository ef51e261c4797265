"""Asterisk integration: PBX config rendering, the AMI client behind the AmiBridge actor,
and the transfer path (Redirect of the caller's channel after playback has drained)."""
