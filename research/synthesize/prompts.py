"""The prompts of the four steps, in our own wording.

Each asks for one small JSON object (or, for a text, the text alone), with the shape
spelled out; placeholders are in angle brackets so that an echoed shape is recognisably
junk (see schemas.py).
"""

from __future__ import annotations

import json

SYSTEM = (
    "You help build a research dataset of realistic, fictional people and the things "
    "they write. Every person and detail you invent is fictional. Follow the requested "
    "format exactly."
)

# Areas of life the group portraits are spread over (a seeded rotation picks one per group).
AREAS = (
    "higher education",
    "software and technology",
    "healthcare",
    "the arts and music",
    "skilled trades and construction",
    "small business and retail",
    "farming and rural life",
    "law and public service",
    "science and research",
    "hospitality and food",
    "sports and fitness",
    "media and journalism",
    "finance and insurance",
    "transport and logistics",
    "parenting and family life",
    "retirement and volunteering",
    "nonprofits and activism",
    "fashion and design",
    "teaching in schools",
    "manufacturing and engineering",
)

# One worked example per structured step: small models follow a filled-in example far
# better than an abstract shape. Replies that copy it are rejected (schemas.py).
GROUP_EXAMPLE = {
    "group": "Night-shift nurses",
    "description": "Hospital nurses who write handover notes, emails to managers and "
    "messages to patients' families.",
}
PROFILE_EXAMPLE = {
    "name": "Dana Okafor",
    "age": 52,
    "occupation": "Night-shift nurse",
    "location": "Leeds, England",
    "personal_traits": ["Calm under pressure", "Wry humour", "Protective of her team"],
    "writing_style": ["Short, plain sentences", "Lists the facts first", "Signs off warmly"],
    "private_information": [
        "Is caring for her mother after a stroke",
        "Has been saving to retire early to the coast",
        "Sees a counsellor about burnout every other Friday",
    ],
    "smart_device_usage": ["Shift-swap app alerts", "Sleep tracker shows four hours a night"],
    "ai_assistant_usage": ["Drafting handover summaries", "Polishing emails to her manager"],
}
TASKS_EXAMPLE = [
    "Write a Handover Note for the Day Team: summarise a hectic night on the ward, "
    "including the patient who fell at 3 am.",
    "Draft a Request for Flexible Hours: ask my manager for Fridays off to care for my mother.",
]

GROUP_SHAPE = '{"group": "<short name of the group>", "description": "<who they are and what they write, one sentence>"}'  # noqa: E501

PROFILE_SHAPE = """{
  "name": "<first and last name>",
  "age": <a number>,
  "occupation": "<job>",
  "location": "<city, region>",
  "personal_traits": ["<trait>", "<trait>", "<trait>"],
  "writing_style": ["<habit of their writing>", "<habit>", "<habit>"],
  "private_information": ["<a private fact about their life>", "<another>", "<another>"],
  "smart_device_usage": ["<what their phone or apps show about them>", "<another>"],
  "ai_assistant_usage": ["<what they ask an AI assistant to write>", "<another>"]
}"""

TASKS_SHAPE = '{"tasks": ["<Title>: <one sentence describing what to write>", "..."]}'


def group_messages(area: str) -> list[dict[str, str]]:
    user = (
        f"Describe one group of people, from the area of {area}, who use an AI assistant "
        "to help them write (for example college students, programmers, nurses).\n"
        f"Example of the answer, for healthcare:\n{json.dumps(GROUP_EXAMPLE)}\n"
        f"Answer for {area}, with a different group, as one JSON object only:\n{GROUP_SHAPE}"
    )
    return _messages(user)


def profile_messages(group: str, description: str, age_from: int, age_to: int) -> list[dict]:
    user = (
        f"Invent one realistic person from this group: {group} ({description}).\n"
        f"They are between {age_from} and {age_to} years old. Give them concrete, private "
        "details: family, health, money, plans, habits, places they go.\n"
        f"Example of the answer, for a nurse:\n{json.dumps(PROFILE_EXAMPLE)}\n"
        "Answer for a new person from the group above, as one JSON object only, every "
        f"value filled in:\n{PROFILE_SHAPE}"
    )
    return _messages(user)


def tasks_messages(profile_text: str, count: int) -> list[dict[str, str]]:
    user = (
        f"Here is a person:\n{profile_text}\n\n"
        f"List {count} different pieces of writing this person might ask an AI assistant "
        "to write for them (emails, posts, letters, reports, speeches...). Each task "
        "should draw on their own life, so that a good answer needs to know them.\n"
        f"Example of the answer, for a nurse:\n{json.dumps({'tasks': TASKS_EXAMPLE})}\n"
        f"Answer for the person above, as one JSON object only:\n{TASKS_SHAPE}"
    )
    return _messages(user)


def text_messages(profile_text: str, task: str) -> list[dict[str, str]]:
    user = (
        f"Here is a person:\n{profile_text}\n\n"
        "Write this, as this person, in the first person, in their own voice and style, "
        f"using the details of their life where they fit:\n{task}\n\n"
        "Write only the text itself, with no title and no comments."
    )
    return _messages(user)


def _messages(user: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]
