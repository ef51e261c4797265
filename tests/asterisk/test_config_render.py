"""Rendered Asterisk configs, parsed back and checked: contexts, priorities, options, secrets."""

from __future__ import annotations

import re
import stat

import pytest

from tests.asterisk.conf_parser import parse_conf, parse_dialplan, typed_section
from theo_ray.asterisk.config_render import render_asterisk_config
from theo_ray.cli.asterisk_site import load_site_settings
from theo_ray.errors import ConfigError

SITE = [
    "theo.host=10.20.0.5",
    "theo.sip_port=5080",
    "pbx.host=10.20.0.2",
    'dialplan.transfer_routes={"atendimento": {"kind": "queue", "target": "atendimento"},'
    ' "suporte": {"kind": "dial", "target": "PJSIP/2000", "timeout_s": 60}}',
]


def render(tmp_path, overrides=(), environ=None, include_secret=True):
    settings = load_site_settings(None, [*SITE, *overrides])
    paths = render_asterisk_config(settings, tmp_path / "out", environ=environ or {}, include_secret=include_secret)
    return settings, {p.name: p for p in paths}


def test_renders_the_four_files(tmp_path):
    _, files = render(tmp_path)
    assert sorted(files) == ["extensions.conf", "manager.conf", "pjsip.conf", "rtp.conf"]
    for path in files.values():
        text = path.read_text()
        assert "{{" not in text and "}}" not in text
        parse_conf(text)  # every line is valid .conf syntax
    # The site's own trunks, phones and contexts live in files rendering never overwrites.
    assert parse_conf(files["pjsip.conf"].read_text())[-1].includes == ["pjsip_site.conf"]
    assert parse_conf(files["extensions.conf"].read_text())[-1].includes == ["extensions_site.conf"]


def test_pjsip_trunk_to_theo(tmp_path):
    _, files = render(tmp_path)
    sections = parse_conf(files["pjsip.conf"].read_text())
    endpoint = typed_section(sections, "theo", "endpoint")
    for key, value in {
        "timers": "yes",
        "timers_min_se": "90",
        "timers_sess_expires": "1800",
        "allow": "!all,g722,ulaw,alaw",
        "direct_media": "no",
        "rtp_symmetric": "yes",
        "aors": "theo",
    }.items():
        assert endpoint.get(key) == value, key
    transport = typed_section(sections, endpoint.get("transport"), "transport")
    assert transport.get("protocol") == "udp" and transport.get("bind") == "10.20.0.2:5060"
    aor = typed_section(sections, "theo", "aor")
    # One contact per gateway shard (4 by default), each qualified.
    assert aor.get_all("contact") == [f"sip:theo@10.20.0.5:{5080 + k}" for k in range(4)]
    assert int(aor.get("qualify_frequency")) > 0
    identify = typed_section(sections, "theo", "identify")
    assert identify.get("match") == "10.20.0.5" and identify.get("endpoint") == "theo"
    # calls coming FROM Theo land in a context that exists and only hangs up
    plan = parse_dialplan(parse_conf(files["extensions.conf"].read_text()))
    assert [s.app for s in plan[endpoint.get("context")]["s"]] == ["Hangup"]


def test_dialplan_priorities_and_targets_are_consistent(tmp_path):
    settings, files = render(tmp_path)
    plan = parse_dialplan(parse_conf(files["extensions.conf"].read_text()))
    for context, extens in plan.items():
        for exten, steps in extens.items():
            assert [s.priority for s in steps] == list(range(1, len(steps) + 1)), (context, exten)
    # every Goto/Gosub-style target points at an existing context/extension
    for context, extens in plan.items():
        for exten, steps in extens.items():
            for step in steps:
                if step.app == "Goto" and "," in step.args:
                    ctx, ext, prio = step.args.split(",")
                    assert ext in plan[ctx] and int(prio) <= len(plan[ctx][ext])
                elif step.app in ("Goto", "GotoIf"):  # a label of the same extension
                    label = step.args.rsplit("?", 1)[-1]
                    assert label in [s.label for s in steps], (context, exten, label)
    inbound = plan["theo-inbound"]["8000"]
    apps = [s.app for s in inbound]
    assert apps.index("Answer") < apps.index("Dial")
    set_args = [s.args for s in inbound if s.app == "Set"]
    assert "__THEO_SESSION_ID=${UNIQUEID}" in set_args
    assert "THEO_LEG=caller" in set_args
    hangup_handler = next(a for a in set_args if a.startswith("CHANNEL(hangup_handler_push)="))
    ctx, ext, prio = hangup_handler.split("=", 1)[1].split(",")
    assert plan[ctx][ext][-1].app == "Return"
    dial = next(s for s in inbound if s.app == "Dial")
    target, timeout, options = dial.args.split(",", 2)
    # The shard's URI: port 5080 + THEO_SHARD, THEO_SHARD from 0..3 at random, then the next
    # one after each failed try (full, refused, unreachable or silent), at most shards - 1
    # times and within the total dial time.
    assert target == "PJSIP/theo/sip:theo@10.20.0.5:$[5080+${THEO_SHARD}]", target
    assert int(timeout) == settings.dialplan.dial_timeout_s
    set_args_all = [s.args for s in inbound if s.app == "Set"]
    assert "THEO_SHARD=${RAND(0,3)}" in set_args_all and "THEO_SHARD=$[(${THEO_SHARD}+1)%4]" in set_args_all
    assert "THEO_DIAL_START=${EPOCH}" in set_args_all
    failed = next(a for a in set_args_all if a.startswith("THEO_SHARD_FAILED="))
    for status in ("BUSY", "CHANUNAVAIL", "CONGESTION", "NOANSWER"):
        assert f'"${{DIALSTATUS}}" = "{status}"' in failed, status
    assert "ANSWER\"" not in failed.replace("NOANSWER", "")  # a call Theo answered is not retried
    retry = next(s for s in inbound if s.app == "GotoIf")
    assert retry.args == (
        "$[${THEO_SHARD_FAILED} & ${THEO_TRIES} < 3 & ${EPOCH} - ${THEO_DIAL_START} < "
        f"{settings.dialplan.dial_total_timeout_s}]?theo_next"
    )
    assert inbound[apps.index("Dial")].label == "theo_dial" and inbound[-1].args == "theo_dial"
    assert "g" in options.split("b(")[0]  # continue in the dialplan when the AI leg hangs up
    predial = re.search(r"b\(([^^]+)\^([^^]+)\^(\d+)\(\$\{THEO_SESSION_ID\}\)\)", options)
    assert predial, options
    handler = plan[predial.group(1)][predial.group(2)]
    assert handler[0].app == "Set" and handler[0].args == "PJSIP_HEADER(add,X-Theo-Session)=${ARG1}"
    assert handler[-1].app == "Return"
    # no dead air: after Dial the caller is sent to the fallback route
    after_dial = inbound[apps.index("Dial") + 1:]
    goto = next(s for s in after_dial if s.app == "Goto")
    assert goto.args == "theo-transfer,atendimento,1"


def test_transfer_routes_queue_dial_and_fallback(tmp_path):
    _, files = render(tmp_path)
    plan = parse_dialplan(parse_conf(files["extensions.conf"].read_text()))
    transfer = plan["theo-transfer"]
    assert set(transfer) == {"atendimento", "suporte"}
    queue = [s for s in transfer["atendimento"] if s.app == "Queue"]
    assert queue and queue[0].args.startswith("atendimento,")
    assert transfer["atendimento"][-1].app == "Hangup"  # the fallback route is the last resort
    dial = [s for s in transfer["suporte"] if s.app == "Dial"]
    assert dial and dial[0].args == "PJSIP/2000,60,m(default)"  # music on hold while it rings
    assert transfer["suporte"][-1].app == "Goto" and transfer["suporte"][-1].args == "theo-transfer,atendimento,1"


def test_manager_user_is_minimal_and_limited_to_theo(tmp_path):
    _, files = render(tmp_path)
    sections = parse_conf(files["manager.conf"].read_text())
    general = sections[0]
    assert general.name == "general" and general.get("enabled") == "yes" and general.get("port") == "5038"
    user = next(s for s in sections if s.name == "theo")
    assert user.get("read") == "call,dialplan"
    assert user.get("write") == "call"
    assert user.get_all("deny") == ["0.0.0.0/0.0.0.0", "::/0"]
    assert user.get_all("permit") == ["10.20.0.5/32"]
    filters = [k for k, _ in user.options if k.startswith("eventfilter(")]
    assert any("name(VarSet)" in f for f in filters) and any("name(Hangup)" in f for f in filters)


def test_no_secret_in_rendered_files_without_env(tmp_path):
    _, files = render(tmp_path)
    sections = parse_conf(files["manager.conf"].read_text())
    user = next(s for s in sections if s.name == "theo")
    assert user.get("secret") is None
    assert user.includes == ["/etc/asterisk/theo_ami_secret.conf"]
    for path in files.values():
        assert not re.search(r"^\s*secret\s*=", path.read_text(), re.M), path.name
    # Without the secret it is an ordinary config file: readable by a container's asterisk
    # user when bind-mounted (the secret's own include file is the one to protect).
    assert stat.S_IMODE(files["manager.conf"].stat().st_mode) == 0o644


def test_secret_from_env_is_written_escaped(tmp_path):
    _, files = render(tmp_path, environ={"THEO_AMI_SECRET": "p4ss;word"})
    text = files["manager.conf"].read_text()
    assert "secret=p4ss\\;word" in text
    user = next(s for s in parse_conf(text) if s.name == "theo")
    assert user.get("secret") == "p4ss;word"  # written as p4ss\;word, read back whole
    assert user.includes == []
    assert stat.S_IMODE(files["manager.conf"].stat().st_mode) == 0o640
    for name in ("pjsip.conf", "extensions.conf", "rtp.conf"):
        assert "p4ss" not in files[name].read_text()


def test_secret_with_a_backslash_is_refused(tmp_path):
    """Asterisk unescapes only "\\;" in config values: a backslash would never match."""
    with pytest.raises(ConfigError) as info:
        render(tmp_path, environ={"THEO_AMI_SECRET": "a\\b"})
    assert info.value.key == "THEO_AMI_SECRET"


def test_secret_from_secrets_file(tmp_path):
    secret_file = tmp_path / "ami_secret"
    secret_file.write_text("from-file\n")
    secret_file.chmod(0o600)
    _, files = render(tmp_path, overrides=[f"ami.secret_file={secret_file}"])
    user = next(s for s in parse_conf(files["manager.conf"].read_text()) if s.name == "theo")
    assert user.get("secret") == "from-file"


def test_a_world_readable_secret_file_is_refused(tmp_path):
    secret_file = tmp_path / "ami_secret"
    secret_file.write_text("from-file\n")
    secret_file.chmod(0o644)
    with pytest.raises(ConfigError, match="readable or writable by every user") as info:
        render(tmp_path, overrides=[f"ami.secret_file={secret_file}"])
    assert info.value.key == "ami.secret_file"


@pytest.mark.parametrize("secret", ["mysecret", "amp111", "Password", "changeme"])
def test_a_well_known_default_secret_is_refused(tmp_path, secret):
    with pytest.raises(ConfigError, match="well-known default") as info:
        render(tmp_path, environ={"THEO_AMI_SECRET": secret})
    assert info.value.key == "THEO_AMI_SECRET"


def test_the_secret_is_rendered_only_when_asked(tmp_path):
    _, files = render(tmp_path, environ={"THEO_AMI_SECRET": "p4ss;word-not-asked"}, include_secret=False)
    text = files["manager.conf"].read_text()
    assert "p4ss" not in text and "#include /etc/asterisk/theo_ami_secret.conf" in text


def test_ami_over_tls(tmp_path):
    _, files = render(tmp_path, overrides=["ami.tls=true", "ami.host=10.20.0.2"])
    general = parse_conf(files["manager.conf"].read_text())[0]
    assert general.get("tlsenable") == "yes" and general.get("tlsbindaddr") == "10.20.0.2:5039"
    assert general.get("bindaddr") == "127.0.0.1"


def test_ami_listens_on_the_pbx_address_not_every_interface(tmp_path):
    general = parse_conf(render(tmp_path, overrides=["ami.host=10.20.0.2"])[1]["manager.conf"].read_text())[0]
    assert general.get("bindaddr") == "10.20.0.2"
    general = parse_conf(render(tmp_path, overrides=["ami.host=10.20.0.2", "ami.bind_address=10.30.0.2"])[1][
        "manager.conf"].read_text())[0]
    assert general.get("bindaddr") == "10.30.0.2"
    with pytest.raises(ConfigError) as info:
        render(tmp_path, overrides=["ami.host=pbx.example.net"])
    assert info.value.key == "ami.bind_address"


def test_ami_permit_takes_a_json_list_on_the_command_line(tmp_path):
    _, files = render(tmp_path, overrides=['ami.permit=["10.20.0.5/32", "10.20.1.0/24"]'])
    user = next(s for s in parse_conf(files["manager.conf"].read_text()) if s.name == "theo")
    assert user.get_all("permit") == ["10.20.0.5/32", "10.20.1.0/24"]


def test_rtp_range(tmp_path):
    _, files = render(tmp_path, overrides=["pbx.rtp_port_start=40000", "pbx.rtp_port_end=40100"])
    general = parse_conf(files["rtp.conf"].read_text())[0]
    assert (general.get("rtpstart"), general.get("rtpend")) == ("40000", "40100")


def test_nat_lines_only_when_asked(tmp_path):
    _, files = render(tmp_path, overrides=["pbx.external_media_address=203.0.113.7",
                                           'pbx.local_nets=["10.20.0.0/16"]'])
    sections = parse_conf(files["pjsip.conf"].read_text())
    transport = next(s for s in sections if s.get("type") == "transport")
    assert transport.get("external_media_address") == "203.0.113.7"
    # Theo's own address is always local: SDP toward Theo is never rewritten.
    assert transport.get_all("local_net") == ["10.20.0.0/16", "10.20.0.5/32"]


@pytest.mark.parametrize(
    "override, key",
    [
        ("ami.port=70000", "ami.port"),
        ("theo.host=10.0.0.1\nsecret=x", "theo.host"),  # no config-line injection
        ("dialplan.fallback_route=nowhere", "dialplan.fallback_route"),
        ("pbx.rtp_port_start=30000", "pbx.rtp_port_start"),
        ("sip.bogus=1", "sip"),
        ("theo.transport=sctp", "theo.transport"),
        # Theo's gateway has no SRTP (SDES) nor Opus yet: settings it could not honour.
        ("pbx.media_encryption=sdes", "pbx"),
        ('sip.codecs=["opus"]', "sip.codecs[0]"),
        ("dialplan.dial_total_timeout_s=3", "dialplan.dial_total_timeout_s"),
    ],
)
def test_bad_settings_name_the_key(override, key):
    with pytest.raises(ConfigError) as info:
        load_site_settings(None, [*SITE, override])
    assert info.value.key == key


def test_settings_file_toml(tmp_path):
    path = tmp_path / "site.toml"
    path.write_text('[theo]\nhost = "10.9.9.9"\n[dialplan]\ninbound_exten = "4000"\n')
    settings = load_site_settings(path, ["ami.port=5039"])
    assert settings.theo.host == "10.9.9.9" and settings.dialplan.inbound_exten == "4000"
    assert settings.ami.port == 5039


def test_theo_config_file_is_the_settings_file(tmp_path):
    """One file for both sides: Theo's own config, its [asterisk] section rendered."""
    path = tmp_path / "theo.toml"
    path.write_text(
        '[sip]\nhost = "10.9.9.5"\nport = 5090\nshards = 2\n'
        '[call]\nuse_ami = true\n'
        '[asterisk.theo]\nhost = "10.9.9.5"\nsip_port = 5090\nshards = 2\n'
        '[asterisk.pbx]\nhost = "10.9.9.2"\n'
    )
    settings = load_site_settings(path, ["ami.port=5039"])
    assert (settings.theo.host, settings.theo.sip_port, settings.theo.shards) == ("10.9.9.5", 5090, 2)
    assert settings.pbx.host == "10.9.9.2" and settings.ami.port == 5039
    # Theo's own cross-checks apply: the PBX must dial the ports the gateways listen on.
    path.write_text(path.read_text().replace("sip_port = 5090", "sip_port = 5080"))
    with pytest.raises(ConfigError) as info:
        load_site_settings(path)
    assert info.value.key == "asterisk.theo"


def test_theo_config_named_by_config_is_read_as_such(tmp_path):
    """`theo --config FILE asterisk-config`: FILE is Theo's config even when its only table
    is one a site file also has ([sip]), and in YAML too."""
    toml = tmp_path / "theo.toml"
    toml.write_text('[sip]\nhost = "10.9.9.5"\n')
    assert load_site_settings(toml, theo_config=True).theo.host == "127.0.0.1"  # [asterisk] defaults
    yaml = tmp_path / "theo.yaml"
    yaml.write_text("asterisk:\n  pbx:\n    host: 10.9.9.2\n")
    assert load_site_settings(yaml).pbx.host == "10.9.9.2"


def test_theo_host_name_needs_an_explicit_ami_permit(tmp_path):
    """AMI `permit` takes networks: a host name cannot be turned into one."""
    with pytest.raises(ConfigError) as info:
        render(tmp_path, overrides=["theo.host=theo.example.net"])
    assert info.value.key == "ami.permit"
    _, files = render(tmp_path, overrides=["theo.host=theo.example.net", 'ami.permit=["10.20.0.0/24"]'])
    user = next(s for s in parse_conf(files["manager.conf"].read_text()) if s.name == "theo")
    assert user.get_all("permit") == ["10.20.0.0/24"]


def test_asterisk_side_recording_is_off_by_default_and_a_mixmonitor_step_when_on(tmp_path):
    def inbound_steps(overrides, out):
        _, files = render(out, overrides)
        plan = parse_dialplan(parse_conf(files["extensions.conf"].read_text()))
        return plan["theo-inbound"]["8000"]

    assert "MixMonitor" not in [s.app for s in inbound_steps([], tmp_path / "off")]
    steps = inbound_steps(["dialplan.mixmonitor=true"], tmp_path / "wav")
    apps = [s.app for s in steps]
    # From the answer on (before Theo is dialled), named after the session id Theo is given.
    assert apps.index("Answer") < apps.index("MixMonitor") < apps.index("Dial")
    assert apps.index("MixMonitor") > [s.args for s in steps].index("__THEO_SESSION_ID=${UNIQUEID}")
    assert steps[apps.index("MixMonitor")].args == "/var/spool/asterisk/monitor/theo/${THEO_SESSION_ID}.wav"
    assert [s.priority for s in steps] == list(range(1, len(steps) + 1))
    stereo = inbound_steps(["dialplan.mixmonitor=true", "dialplan.mixmonitor_format=stereo-raw",
                            "dialplan.mixmonitor_dir=/srv/rec/"], tmp_path / "raw")
    assert next(s.args for s in stereo if s.app == "MixMonitor") == "/srv/rec/${THEO_SESSION_ID}.raw,D"


def test_tls_transport_toward_theo(tmp_path):
    """theo.transport = tls: a TLS transport with the certificate lines, and every contact
    and the Dial() on Theo's TLS ports with ;transport=tls."""
    _, files = render(tmp_path, ["theo.transport=tls", "theo.tls_port=5090", "pbx.tls.port=5061",
                                 "pbx.tls.ca_list_file=/etc/asterisk/keys/theo-ca.crt"])
    sections = parse_conf(files["pjsip.conf"].read_text())
    endpoint = typed_section(sections, "theo", "endpoint")
    transport = typed_section(sections, endpoint.get("transport"), "transport")
    assert transport.get("protocol") == "tls" and transport.get("bind") == "10.20.0.2:5061"
    assert transport.get("ca_list_file") == "/etc/asterisk/keys/theo-ca.crt"
    assert transport.get("verify_server") == "yes" and transport.get("method") == "tlsv1_2"
    aor = typed_section(sections, "theo", "aor")
    assert aor.get_all("contact") == [f"sip:theo@10.20.0.5:{5090 + k};transport=tls" for k in range(4)]
    extensions = files["extensions.conf"].read_text()
    assert "@10.20.0.5:$[5090+${THEO_SHARD}]\\;transport=tls," in extensions


def test_udp_transport_has_no_tls_lines(tmp_path):
    _, files = render(tmp_path)
    assert "ca_list_file" not in files["pjsip.conf"].read_text()
    endpoint = typed_section(parse_conf(files["pjsip.conf"].read_text()), "theo", "endpoint")
    assert endpoint.get("media_encryption") == "no"


def test_srtp_toward_theo(tmp_path):
    _, files = render(tmp_path, ["theo.transport=tls", "sip.media_encryption=sdes"])
    endpoint = typed_section(parse_conf(files["pjsip.conf"].read_text()), "theo", "endpoint")
    assert endpoint.get("media_encryption") == "sdes"
