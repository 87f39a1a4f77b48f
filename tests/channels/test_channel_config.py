"""Channel configs: typed settings, secrets only as environment variable names, every problem
listed, credentials refused, and a listing that says whether a variable is set, never its value."""

from __future__ import annotations

import pytest

from stagent_lab.errors import ChannelConfigError, ChannelError, ProfileNotFoundError
from tests.channels.support import SLACK_CHANNEL, add_hook, add_slack
from tests.fakes.slack_server import TOKEN as SLACK_TOKEN
from tests.fakes.telegram_server import TOKEN as TELEGRAM_TOKEN


def test_a_token_given_as_a_value_is_refused_and_never_echoed(clab):
    with pytest.raises(ChannelConfigError) as err:
        clab.channels.add(
            "ops", "slack", settings={"channel": SLACK_CHANNEL}, secrets={"bot_token": SLACK_TOKEN}
        )
    text = str(err.value)
    assert "secrets.bot_token" in text and "environment variable" in text
    assert SLACK_TOKEN not in text and "xoxb" not in text
    assert clab.channels.list().empty


@pytest.mark.parametrize(
    ("settings", "where"),
    [
        ({"channel": SLACK_CHANNEL, "note": "xoxp-1234-secret"}, "settings.note"),
        ({"channel": SLACK_CHANNEL, "api_base": "https://hooks.slack.com/services/T/B/x"},
         "settings.api_base"),
        ({"channel": SLACK_CHANNEL, "api_base": "https://user:pw@slack.example/api"},
         "settings.api_base"),
        ({"channel": SLACK_CHANNEL, "api_base": "https://slack.example/api?token=abc"},
         "settings.api_base"),
        ({"channel": SLACK_CHANNEL, "extra": [{"deep": TELEGRAM_TOKEN}]}, "settings.extra[0].deep"),
    ],
)  # fmt: skip
def test_credential_looking_settings_are_refused_with_their_path(clab, settings, where):
    with pytest.raises(ChannelConfigError) as err:
        clab.channels.add(
            "ops", "slack", settings=settings, secrets={"bot_token": "SLACK_BOT_TOKEN"}
        )
    assert f"{where}: looks like a credential" in str(err.value)


def test_every_problem_is_listed_with_its_path(clab):
    with pytest.raises(ChannelConfigError) as err:
        clab.channels.add(
            "tg",
            "telegram",
            direction="both",
            settings={"chat_id": "not a chat", "inbound": "webhook", "poll_timeout_s": 500},
            secrets={"bot_token": "lower-case"},
            events=["task.completed", "task.exploded"],
        )
    text = str(err.value)
    for piece in (
        "settings.chat_id",
        "settings.poll_timeout_s",
        "secrets.bot_token",
        "events[1]: unknown event 'task.exploded'",
    ):
        assert piece in text, piece


def test_cross_field_rules(clab):
    with pytest.raises(ChannelConfigError, match=r"secrets.signing_secret: required"):
        clab.channels.add(
            "ev", "slack", direction="both",
            settings={"channel": SLACK_CHANNEL, "inbound": "events"},
            secrets={"bot_token": "SLACK_BOT_TOKEN"},
        )  # fmt: skip
    with pytest.raises(ChannelConfigError, match=r"settings.url: use https"):
        clab.channels.add(
            "h", "webhook", settings={"url": "http://example.com/hook"}, secrets={"secret": "S"}
        )
    with pytest.raises(ChannelConfigError, match=r"poll_interval_s"):
        clab.channels.add(
            "fast", "slack", settings={"channel": SLACK_CHANNEL, "poll_interval_s": 1},
            secrets={"bot_token": "SLACK_BOT_TOKEN"},
        )  # fmt: skip


def test_list_shows_env_names_and_whether_set_never_values(clab, slack, env):
    env.delenv("SLACK_SIGNING_SECRET")
    add_slack(clab, slack, secrets={"bot_token": "SLACK_BOT_TOKEN",
                                    "signing_secret": "SLACK_SIGNING_SECRET"})  # fmt: skip
    df = clab.channels.list()
    row = df.iloc[0]
    assert row["secrets"] == "bot_token=SLACK_BOT_TOKEN, signing_secret=SLACK_SIGNING_SECRET"
    assert row["secrets_set"] == {"bot_token": True, "signing_secret": False}
    assert SLACK_TOKEN not in df.to_csv()
    view = clab.channels.get("ops")
    assert view["secrets"]["bot_token"] == {"env": "SLACK_BOT_TOKEN", "set": True}
    assert SLACK_TOKEN not in repr(view)


def test_names_are_unique_and_channels_are_named_by_name_or_id(clab, slack, hook):
    cid = add_slack(clab, slack)
    with pytest.raises(ValueError, match="already exists"):
        add_slack(clab, slack)
    assert clab.channels.get(cid)["name"] == "ops"
    assert clab.channels.get("ops")["id"] == cid
    with pytest.raises(ChannelError, match=r"no channel named 'nope' \(channels: ops\)"):
        clab.channels.get("nope")


def test_update_merges_settings_and_validates_again(clab, slack):
    add_slack(clab, slack, settings={"poll_interval_s": 30})
    out = clab.channels.update("ops", settings={"task_trigger": "!run"}, allow_always=True)
    assert out["settings"]["poll_interval_s"] == 30 and out["settings"]["task_trigger"] == "!run"
    assert out["allow_always"] is True
    with pytest.raises(ChannelConfigError, match="cannot change type"):
        clab.channels.update("ops", type="telegram")
    with pytest.raises(ChannelConfigError, match=r"settings\.channel"):
        clab.channels.update("ops", settings={"channel": "bad id"})
    assert clab.channels.get("ops")["settings"]["channel"] == SLACK_CHANNEL


def test_unknown_default_profile_is_refused_at_add(clab, hook):
    with pytest.raises(ProfileNotFoundError):
        add_hook(clab, hook, default_profile="nobody")


def test_disable_enable_remove(clab, slack):
    add_slack(clab, slack)
    assert clab.channels.disable("ops")["status"] == "disabled"
    assert clab.channels.enable("ops")["status"] == "active"
    clab.channels.remove("ops")
    assert clab.channels.list().empty


def test_settings_keys_are_typed(clab):
    with pytest.raises(ValueError, match=r"channels\.max_attempts"):
        clab.set_setting("channels.max_attempts", 0)
    with pytest.raises(ValueError, match="host:port"):
        clab.set_setting("channels.http_bind", "nowhere")
    clab.set_setting("channels.max_attempts", 3)
    assert clab.settings()["channels.max_attempts"] == "3"
