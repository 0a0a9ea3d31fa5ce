"""`cdrstream token issue | revoke | list | import | rotate-cursor-secret`: partner access
tokens, printed once, stored hashed (in Redis, or the single-host access file)."""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    issue = sub.add_parser("issue", help="issue a token for a partner and its tenants")
    issue.add_argument("--partner", required=True, help="partner id")
    issue.add_argument(
        "--tenants", required=True, help="comma-separated tenant ids the partner has contracts with"
    )
    issue.add_argument(
        "--airtime-reseller",
        action="store_true",
        help="the partner resells airtime (wholesale); without it the token reads nothing (403)",
    )
    issue.add_argument(
        "--mask",
        action="store_true",
        help="serve every number masked (its country code and last digits only), no raw "
        "number, and no number filter beyond a whole country code",
    )
    revoke = sub.add_parser("revoke", help="revoke all of a partner's tokens, or one token")
    revoke.add_argument("--partner", help="revoke every token of this partner")
    revoke.add_argument("--token-id", help="revoke this token (the id is the part after cdrs_)")
    sub.add_parser("list", help="list tokens (ids, partners, tenants, grants; never the tokens)")
    imported = sub.add_parser(
        "import", help="copy an access file's tokens into redis (once, when moving to redis)"
    )
    imported.add_argument("file", help="the access file (JSON) to copy")
    sub.add_parser(
        "rotate-cursor-secret",
        help="new shared paging-cursor secret; cursors made before stay valid for an hour",
    )


def run(args: argparse.Namespace) -> int:
    from redis.exceptions import RedisClusterException, RedisError

    from cdrstream.access import token_admin
    from cdrstream.access.access_store import AccessFileError
    from cdrstream.settings import load_settings

    settings = load_settings()
    try:
        if args.action == "issue":
            tenants = [t.strip() for t in args.tenants.split(",") if t.strip()]
            if not tenants:
                print("--tenants: name at least one tenant", file=sys.stderr)
                return 2
            token, entry = token_admin.issue(
                settings,
                partner=args.partner,
                tenants=tenants,
                airtime_reseller=args.airtime_reseller,
                masked_numbers=args.mask,
            )
            print(token)
            hint = (
                f"token {entry.token_id} for partner {entry.partner} "
                f"(tenants {', '.join(sorted(entry.tenants))}"
                f"{'; numbers masked' if entry.masked_numbers else ''}"
                f"{'' if entry.airtime_reseller else '; NOT an airtime reseller: reads nothing'}). "
                f"Stored hashed in {token_admin.where(settings)}: this is the only time it is "
                "shown. Send it as 'Authorization: Bearer <token>'."
            )
            print(hint, file=sys.stderr)
            return 0
        if args.action == "revoke":
            if not args.partner and not args.token_id:
                print("revoke: give --partner and/or --token-id", file=sys.stderr)
                return 2
            revoked = token_admin.revoke(settings, partner=args.partner, token_id=args.token_id)
            for e in revoked:
                print(f"revoked {e.token_id} ({e.partner})")
            if not revoked:
                print("no live token matched", file=sys.stderr)
                return 1
            return 0
        if args.action == "import":
            added, present = token_admin.import_file(settings, args.file)
            into = token_admin.where(settings)
            print(f"imported {added} tokens into {into}; {present} were there already")
            return 0
        if args.action == "rotate-cursor-secret":
            token_admin.rotate_cursor_secret(settings)
            print("cursor secret rotated; cursors of the previous one are accepted for an hour")
            return 0
        for e in token_admin.list_tokens(settings).tokens:
            state = f"revoked {e.revoked_at}" if e.revoked else "live"
            reseller = "airtime-reseller" if e.airtime_reseller else "not-reseller"
            numbers = "masked-numbers" if e.masked_numbers else "full-numbers"
            print(
                f"{e.token_id}  {e.partner}  {','.join(sorted(e.tenants))}  "
                f"{reseller}  {numbers}  created {e.created_at}  {state}"
            )
        return 0
    except (RedisError, RedisClusterException) as exc:
        print(f"token {args.action}: redis unavailable: {type(exc).__name__}", file=sys.stderr)
        return 1
    except (ValueError, AccessFileError, OSError) as exc:
        print(f"token {args.action}: {exc}", file=sys.stderr)
        return 1
