"""The small, stable directory that dev mode and the end-to-end tests run against.

The ids are fixed so that the bot's tests and the Agents Playground configuration can name
the same people and teams.
"""

from __future__ import annotations

from graph.simulator import GraphSimulator

DEV_TENANT_ID = "00000000-0000-0000-0000-0000000000f1"
DEV_TENANT_DOMAIN = "contoso"

ALEX_ID = "aaaaaaaa-0000-0000-0000-000000000001"
MEGAN_ID = "aaaaaaaa-0000-0000-0000-000000000002"
NESTOR_ID = "aaaaaaaa-0000-0000-0000-000000000003"
ISAIAH_ID = "aaaaaaaa-0000-0000-0000-000000000004"
LEE_ID = "aaaaaaaa-0000-0000-0000-000000000005"
PAT_GUEST_ID = "aaaaaaaa-0000-0000-0000-0000000000e1"
PAT_GUEST_EMAIL = "pat@fabrikam.com"

MARKETING_TEAM_ID = "bbbbbbbb-0000-0000-0000-000000000001"
ENGINEERING_TEAM_ID = "bbbbbbbb-0000-0000-0000-000000000002"


def seed_dev_directory(sim: GraphSimulator) -> None:
    """Fill an empty simulator: five Contoso employees with managers, one existing guest
    and two teams."""
    sim.tenant_id = DEV_TENANT_ID
    sim.tenant_domain = DEV_TENANT_DOMAIN
    # Managers first is not required: manager ids are plain references.
    people = [
        (ALEX_ID, "Alex Wilber", "alex", MEGAN_ID),
        (MEGAN_ID, "Megan Bowen", "megan", NESTOR_ID),
        (NESTOR_ID, "Nestor Wilke", "nestor", None),
        (ISAIAH_ID, "Isaiah Langer", "isaiah", MEGAN_ID),
        (LEE_ID, "Lee Gu", "lee", NESTOR_ID),
    ]
    sim.seed(
        users=[
            {
                "id": user_id,
                "display_name": name,
                "mail": f"{first}@contoso.com",
                "user_principal_name": f"{first}@contoso.com",
                "manager_id": manager_id,
            }
            for user_id, name, first, manager_id in people
        ]
        + [
            {
                "id": PAT_GUEST_ID,
                "display_name": "Pat Freelance",
                "mail": PAT_GUEST_EMAIL,
                "other_mails": [PAT_GUEST_EMAIL],
                "user_type": "Guest",
            }
        ],
        teams=[
            {
                "id": MARKETING_TEAM_ID,
                "display_name": "Contoso Marketing",
                "owners": [ALEX_ID],
                "members": [MEGAN_ID, ISAIAH_ID],
            },
            {
                "id": ENGINEERING_TEAM_ID,
                "display_name": "Contoso Engineering",
                "owners": [NESTOR_ID],
                "members": [LEE_ID, ALEX_ID],
            },
        ],
    )
