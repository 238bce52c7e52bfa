#!/usr/bin/python3
"""spam_corpus.py - build the labelled ham/spam set of bench/spam_accuracy.sh.

    python3 bench/spam_corpus.py OUTDIR [N_PER_CLASS_PER_HALF]

Writes OUTDIR/manifest.tsv (one line per message: path, set, label,
template) and the messages themselves, one RFC 5322 message per file, LF
line ends:

  sa/        SpamAssassin's own samples from the Debian package
             (/usr/share/doc/spamassassin/examples/sample-spam.txt and
             sample-nonspam.txt) and a GTUBE message;
  A/ham A/spam   generated from the "A" templates;
  B/ham B/spam   generated from DIFFERENT templates ("B"), the held-out
             half: rules tuned on A (or on anything) are judged on B too;
  speed/10k speed/100k   a few ham and spam messages padded to ~10 KB and
             ~100 KB (several paragraphs, text+HTML), for the speed figures.

Everything comes from templates x random fillers with a fixed seed, so two
runs give the same bytes.  Standard library only (email package builds the
MIME, so the structure, encodings and charsets are proper).  The corpus is
written without looking at any rule set: the templates imitate mail as it
is, ham with its own awkward parts (HTML newsletters with tracking images,
non-English text, attachments) and spam with its usual tricks.
"""

import datetime
import email.charset
import email.utils
import os
import random
import sys
from email.header import Header
from email.mime.application import MIMEApplication
from email.mime.image import MIMEImage
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

SEED = 20261123
SA_EXAMPLES = "/usr/share/doc/spamassassin/examples"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
BASE_TIME = 1767225600          # 2026-01-01, dates go forward from here

FIRST = ["Anna", "Ben", "Carla", "David", "Elena", "Frank", "Grace", "Hugo",
         "Ines", "Jonas", "Kate", "Liam", "Maria", "Nils", "Olga", "Pedro",
         "Quinn", "Rita", "Sam", "Tomas", "Ursula", "Victor", "Wen", "Yusuf"]
LAST = ["Almeida", "Becker", "Costa", "Dubois", "Evans", "Fischer", "Garcia",
        "Hansen", "Ivanova", "Jensen", "Kowalski", "Lopez", "Moreau", "Novak",
        "Olsen", "Pereira", "Rossi", "Schmidt", "Tanaka", "Weber", "Young"]
COMPANIES = [("Northwind Traders", "northwind.example"),
             ("Blue Harbor Logistics", "blueharbor.example"),
             ("Cedar Analytics", "cedar-analytics.example"),
             ("Pinecrest Hardware", "pinecrest.example"),
             ("Lumen Software", "lumensoft.example"),
             ("Atlas Engineering", "atlas-eng.example"),
             ("Greenfield Foods", "greenfield.example"),
             ("Orbit Travel", "orbittravel.example")]
SHOPS = [("Bookworm Store", "bookworm.example"), ("Kitchen Corner", "kitchencorner.example"),
         ("TrailGear", "trailgear.example"), ("Pixel Electronics", "pixel-shop.example")]
LISTS = [("dev", "lists.openproject.example", "OpenProject developers"),
         ("users", "lists.pgsql.example", "database users"),
         ("announce", "lists.distro.example", "distribution announcements"),
         ("help", "lists.gardeners.example", "community gardeners")]
PRODUCTS = ["USB-C dock", "hiking boots", "cast iron pan", "paperback edition of 'The Long Way'",
            "noise cancelling headphones", "garden hose 25m", "ergonomic chair",
            "set of 6 coffee mugs", "laptop sleeve 14\"", "LED desk lamp"]
TOPICS = ["the quarterly budget", "the migration plan", "next week's workshop",
          "the supplier contract", "the draft report", "the release schedule",
          "the new office layout", "the customer feedback survey", "the audit findings"]
CITIES = ["Lisbon", "Hamburg", "Lyon", "Porto", "Oslo", "Krakow", "Valencia", "Turin"]
WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday"]
SENTENCES = [
    "I went through the numbers again and most of them look right to me.",
    "We should keep the scope small for the first iteration and see how it goes.",
    "Could you check whether the figures in section three still match the spreadsheet?",
    "The vendor confirmed the delivery window, so the rest of the plan stands.",
    "I have attached my notes from the call; feel free to add yours.",
    "Let me know if Thursday afternoon works for you, otherwise Friday morning is fine.",
    "There were two open questions left, both about the test environment.",
    "Thanks for the quick turnaround on this, it helped a lot.",
    "I am not sure the second option is cheaper once we count the maintenance.",
    "The team agreed to postpone the decision until we have the usage data.",
    "Please keep in mind that the office is closed on the public holiday.",
    "Our tests found one regression in the import code, the fix is under review.",
    "The minutes of the last meeting are on the shared drive as usual.",
    "If anything is unclear, just reply to this message and I will explain.",
]
NEWS_ITEMS = [
    ("Spring planting guide", "Our gardeners picked the twelve easiest vegetables for small balconies."),
    ("Workshop recordings", "All talks from the autumn meetup are now online, with slides."),
    ("New opening hours", "From next month the shop opens at nine on Saturdays too."),
    ("Member spotlight", "This month we talked to a volunteer who has run the repair cafe for ten years."),
    ("Product update", "The mobile app now syncs offline changes when you are back online."),
    ("Recipe of the week", "A quick lentil soup that keeps for three days in the fridge."),
    ("Security reminder", "We will never ask for your password by email; report anything suspicious."),
    ("Community survey", "Tell us which features you use most; it takes five minutes."),
]

# spam fillers
FREEMAIL = ["mail-box.example", "fastmail-free.example", "inbox-online.example", "webpost.example"]
SPAM_TLDS = ["top", "xyz", "click", "info", "biz", "ru", "cn"]
BRANDS = [("PayPal", "paypal.com", ["paypa1", "paypal-secure", "pay-pal-verify"]),
          ("Microsoft", "microsoft.com", ["micros0ft", "microsoft-online-login", "rnicrosoft"]),
          ("Apple", "apple.com", ["app1e-id", "apple-support-center", "appleid-verify"]),
          ("Amazon", "amazon.com", ["arnazon", "amazon-billing", "amaz0n-account"]),
          ("DHL", "dhl.com", ["dhl-parcel-track", "dh1-express", "dhl-delivery-notice"]),
          ("Netflix", "netflix.com", ["netf1ix", "netflix-billing-update", "netflix-account"])]
DRUGS = [("Viagra", ["V1agra", "V-i-a-g-r-a", "Vi@gra", "V\u0131agra"]),
         ("Cialis", ["C1alis", "C-i-a-l-i-s", "Ci@lis"]),
         ("Xanax", ["X@nax", "X-a-n-a-x", "Xan@x"]),
         ("Tramadol", ["Tr@madol", "Tram@d0l"]),
         ("Valium", ["V@lium", "Val1um"])]
WATCHES = ["Rolex", "Omega", "Breitling", "Tag Heuer", "Cartier", "Patek Philippe"]


def rdate(rng):
    tz = datetime.timezone(datetime.timedelta(hours=rng.choice([-5, 0, 0, 1, 1, 2, 3, 8])))
    t = datetime.datetime.fromtimestamp(BASE_TIME + rng.randint(0, 86400 * 300), tz)
    return email.utils.format_datetime(t)


def person(rng, domain=None):
    f, l = rng.choice(FIRST), rng.choice(LAST)
    d = domain or rng.choice(COMPANIES)[1]
    return f"{f} {l}", f"{f.lower()}.{l.lower()}@{d}"


def spam_domain(rng):
    syl = ["best", "deal", "top", "mega", "win", "pro", "med", "shop", "lux", "fast", "cash", "star"]
    return rng.choice(syl) + rng.choice(syl) + str(rng.randint(1, 99)) + "." + rng.choice(SPAM_TLDS)


def bare_ip(rng):
    return f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def addr(name, mail, charset=None):
    if charset and any(ord(c) > 127 for c in name):
        return email.utils.formataddr((name, mail), charset=charset)
    return email.utils.formataddr((name, mail))


def finish(msg, rng, frm, to, subject, charset=None, msgid_domain=None, date=True,
           msgid=True, extra=None):
    """Top-level header fields, in the order a client writes them."""
    subj = Header(subject, charset).encode() if charset and any(ord(c) > 127 for c in subject) else subject
    # MIME classes put Content-Type first; rebuild the order
    mime = [(k, v) for k, v in msg.items()]
    for k in list(msg.keys()):
        del msg[k]
    if date:
        msg["Date"] = rdate(rng)
    msg["From"] = frm
    msg["To"] = to
    msg["Subject"] = subj
    if msgid:
        dom = msgid_domain or frm.rsplit("@", 1)[-1].rstrip(">")
        msg["Message-ID"] = f"<{rng.getrandbits(64):016x}.{rng.randint(1000, 99999)}@{dom}>"
    for k, v in (extra or []):
        msg[k] = v
    if "MIME-Version" not in [k for k, _ in mime]:
        msg["MIME-Version"] = "1.0"
    for k, v in mime:
        msg[k] = v
    for part in msg.walk():          # only the top level carries MIME-Version
        if part is not msg:
            del part["MIME-Version"]
        if part.is_multipart():      # reproducible boundaries (seeded)
            part.set_boundary(f"=_{rng.getrandbits(64):016x}_{rng.randint(0, 9999):04d}")
    return msg


# utf-8 text as mail clients write it: quoted-printable, not base64
email.charset.add_charset("utf-8", email.charset.SHORTEST, email.charset.QP, "utf-8")


def text(body, charset="utf-8", subtype="plain"):
    m = MIMEText(body, subtype, charset)
    del m["MIME-Version"]            # only the top level carries it
    return m


def alternative(plain, html, charset="utf-8"):
    m = MIMEMultipart("alternative")
    del m["MIME-Version"]
    m.attach(text(plain, charset))
    m.attach(text(html, charset, "html"))
    return m


def html_page(title, paras, footer="", imgs=()):
    out = [f"<html><head><meta charset=\"utf-8\"><title>{title}</title></head><body>"]
    out.append(f"<h1>{title}</h1>")
    for src in imgs:
        out.append(f"<img src=\"{src}\" alt=\"\" width=\"600\">")
    for p in paras:
        out.append(f"<p>{p}</p>")
    if footer:
        out.append(f"<p style=\"font-size:11px;color:#777\">{footer}</p>")
    out.append("</body></html>")
    return "\n".join(out)


def paragraphs(rng, n):
    return [" ".join(rng.sample(SENTENCES, rng.randint(2, 4))) for _ in range(n)]


def fake_pdf(rng, n=1500):
    body = b"%PDF-1.4\n" + bytes(rng.getrandbits(8) for _ in range(n)) + b"\n%%EOF\n"
    return body


def fake_png(rng, n=600):
    return b"\x89PNG\r\n\x1a\n" + bytes(rng.getrandbits(8) for _ in range(n))


# ================================================================== ham A

def ham_newsletter(rng):
    org, dom = rng.choice(COMPANIES + SHOPS)
    items = rng.sample(NEWS_ITEMS, 3)
    name, rcpt = person(rng, "local.example")
    unsub = f"https://news.{dom}/unsubscribe?u={rng.getrandbits(40):x}"
    plain = f"{org} newsletter\n\nHello {name.split()[0]},\n\n" + "\n\n".join(
        f"{t}\n{d}\nRead more: https://www.{dom}/news/{i}" for i, (t, d) in enumerate(items)) + \
        f"\n\nYou receive this because you subscribed at www.{dom}.\nUnsubscribe: {unsub}\n"
    html = html_page(f"{org} newsletter", [f"<b>{t}</b><br>{d} <a href=\"https://www.{dom}/news/{i}\">Read more</a>"
                                           for i, (t, d) in enumerate(items)],
                     f"You receive this because you subscribed at www.{dom}. <a href=\"{unsub}\">Unsubscribe</a>",
                     imgs=[f"https://static.{dom}/img/header.png"])
    m = alternative(plain, html)
    return finish(m, rng, addr(f"{org}", f"newsletter@{dom}"), addr(name, rcpt),
                  f"{org}: {items[0][0]} and more", extra=[("List-Unsubscribe", f"<{unsub}>"),
                                                          ("Precedence", "bulk")])


def ham_business(rng):
    fn, fa = person(rng)
    tn, ta = person(rng, "local.example")
    topic = rng.choice(TOPICS)
    body = f"Hi {tn.split()[0]},\n\n" + "\n\n".join(paragraphs(rng, rng.randint(2, 4))) + \
        f"\n\nRegarding {topic}: I'd suggest we meet on {rng.choice(WEEKDAYS)}.\n\nBest regards,\n{fn}\n"
    return finish(text(body, rng.choice(["us-ascii", "utf-8"])), rng, addr(fn, fa), addr(tn, ta),
                  f"{topic[0].upper()}{topic[1:]}")


def ham_reply(rng):
    fn, fa = person(rng)
    tn, ta = person(rng, "local.example")
    topic = rng.choice(TOPICS)
    quoted = "\n".join("> " + l for l in "\n\n".join(paragraphs(rng, 2)).split("\n"))
    body = f"{rng.choice(['Sounds good.', 'Agreed, thanks.', 'Yes, that works.'])} " + \
        " ".join(rng.sample(SENTENCES, 2)) + f"\n\n{fn.split()[0]}\n\nOn {rdate(rng)}, {tn} <{ta}> wrote:\n{quoted}\n"
    return finish(text(body, "utf-8"), rng, addr(fn, fa), addr(tn, ta), f"Re: {topic}",
                  extra=[("In-Reply-To", f"<{rng.getrandbits(48):x}@local.example>")])


def ham_list(rng):
    lname, ldom, ldesc = rng.choice(LISTS)
    fn, fa = person(rng)
    body = "\n\n".join(paragraphs(rng, rng.randint(2, 3))) + \
        f"\n\n-- \n{fn}\n\n_______________________________________________\n{lname} mailing list\n" \
        f"{lname}@{ldom}\nhttps://{ldom}/mailman/listinfo/{lname}\n"
    return finish(text(body, "utf-8"), rng, addr(fn, fa), f"{lname}@{ldom}",
                  f"[{lname}] {rng.choice(['Question about', 'Patch for', 'Thoughts on'])} {rng.choice(TOPICS)}",
                  extra=[("List-Id", f"{ldesc} <{lname}.{ldom}>"),
                         ("List-Post", f"<mailto:{lname}@{ldom}>"),
                         ("List-Unsubscribe", f"<https://{ldom}/mailman/options/{lname}>"),
                         ("Precedence", "list")])


def ham_order(rng):
    shop, dom = rng.choice(SHOPS)
    tn, ta = person(rng, "local.example")
    items = rng.sample(PRODUCTS, rng.randint(1, 3))
    prices = [rng.randint(5, 250) + rng.choice([0, .49, .99]) for _ in items]
    order = rng.randint(100000, 999999)
    lines = "\n".join(f"  1 x {i:40s} EUR {p:8.2f}" for i, p in zip(items, prices))
    plain = f"Hello {tn.split()[0]},\n\nthank you for your order {order}.\n\n{lines}\n\n" \
        f"  Total: EUR {sum(prices):.2f}\n\nWe will send you another message when it ships.\n" \
        f"Your orders: https://www.{dom}/account/orders/{order}\n\n{shop} customer service\n"
    rows = "".join(f"<tr><td>{i}</td><td>EUR {p:.2f}</td></tr>" for i, p in zip(items, prices))
    html = html_page(f"Order {order} confirmed",
                     [f"Hello {tn.split()[0]}, thank you for your order {order}.",
                      f"<table>{rows}<tr><td><b>Total</b></td><td>EUR {sum(prices):.2f}</td></tr></table>",
                      "We will send you another message when it ships.",
                      f"<a href=\"https://www.{dom}/account/orders/{order}\">Your orders</a>"],
                     f"{shop} customer service", imgs=[f"https://www.{dom}/logo.png"])
    return finish(alternative(plain, html), rng, addr(shop, f"orders@{dom}"), addr(tn, ta),
                  f"Your {shop} order {order} is confirmed")


def ham_german(rng):
    fn, fa = person(rng, "firma.example")
    tn, ta = person(rng, "local.example")
    body = (f"Hallo {tn.split()[0]},\n\nvielen Dank für die Unterlagen. Ich habe sie durchgesehen und "
            f"hätte noch zwei Fragen zur Kostenübersicht. Können wir am {rng.choice(['Montag', 'Dienstag', 'Donnerstag'])} "
            f"kurz telefonieren?\n\nDie Änderungen an der Präsentation schicke ich Ihnen bis Freitag.\n\n"
            f"Mit freundlichen Grüßen\n{fn}\n")
    return finish(text(body, "iso-8859-1"), rng, addr(fn, fa), addr(tn, ta),
                  "Rückfrage zur Kostenübersicht", charset="iso-8859-1")


def ham_attachment(rng):
    fn, fa = person(rng)
    tn, ta = person(rng, "local.example")
    m = MIMEMultipart("mixed")
    m.attach(text(f"Hi {tn.split()[0]},\n\nplease find the {rng.choice(['invoice', 'report', 'minutes', 'offer'])} "
                  f"attached.\n\n" + paragraphs(rng, 1)[0] + f"\n\nRegards,\n{fn}\n", "utf-8"))
    fname = f"{rng.choice(['report', 'minutes', 'offer', 'invoice'])}-{rng.randint(1, 52):02d}.pdf"
    a = MIMEApplication(fake_pdf(rng), "pdf")
    a.add_header("Content-Disposition", "attachment", filename=fname)
    m.attach(a)
    return finish(m, rng, addr(fn, fa), addr(tn, ta), f"{fname[:-4].replace('-', ' ').title()}")


# ================================================================== ham B (held out)

def ham_calendar(rng):
    fn, fa = person(rng)
    tn, ta = person(rng, "local.example")
    topic = rng.choice(TOPICS)
    day = rng.randint(1, 28)
    ics = (f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Example//Calendar//EN\r\nMETHOD:REQUEST\r\n"
           f"BEGIN:VEVENT\r\nUID:{rng.getrandbits(64):x}@calendar.example\r\nDTSTART:202603{day:02d}T090000Z\r\n"
           f"DTEND:202603{day:02d}T100000Z\r\nSUMMARY:Discuss {topic}\r\nORGANIZER:mailto:{fa}\r\n"
           f"ATTENDEE:mailto:{ta}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    m = MIMEMultipart("mixed")
    m.attach(text(f"{fn} has invited you to: Discuss {topic}\nWhen: March {day}, 09:00-10:00 UTC\n"
                  f"Where: room {rng.randint(100, 499)}, {rng.choice(CITIES)} office\n", "utf-8"))
    c = MIMEText(ics, "calendar", "utf-8")
    c.set_param("method", "REQUEST")
    m.attach(c)
    return finish(m, rng, addr(fn, fa), addr(tn, ta), f"Invitation: Discuss {topic} @ March {day}")


def ham_notification(rng):
    tn, ta = person(rng, "local.example")
    repo = rng.choice(["correio", "libfoo", "website", "infra"])
    n = rng.randint(10, 900)
    fn = rng.choice(FIRST).lower()
    comment = paragraphs(rng, 1)[0]
    plain = (f"@{fn} commented on this pull request.\n\n" + comment +
             f"\n\n-- \nReply to this email directly or view it on the forge:\n"
             f"https://forge.example.org/team/{repo}/pull/{n}#comment-{rng.randint(1000, 99999)}\n"
             f"You are receiving this because you were mentioned.\n")
    html = html_page(f"{repo} #{n}", [f"<b>@{fn}</b> commented on this pull request.",
                                      comment,
                                      f"<a href=\"https://forge.example.org/team/{repo}/pull/{n}\">View it on the forge</a>"],
                     "You are receiving this because you were mentioned.",
                     imgs=[f"https://forge.example.org/notifications/beacon/{rng.getrandbits(60):x}.gif"])
    return finish(alternative(plain, html), rng, addr(fn, "notifications@forge.example.org"), addr(tn, ta),
                  f"Re: [team/{repo}] {rng.choice(['Fix', 'Add', 'Refactor'])} {rng.choice(['parser', 'tests', 'docs', 'build'])} (PR #{n})",
                  extra=[("List-Id", f"team/{repo} <{repo}.team.forge.example.org>")])


def ham_shipping(rng):
    shop, dom = rng.choice(SHOPS)
    tn, ta = person(rng, "local.example")
    track = f"{rng.choice(['JJD', 'GM', '1Z'])}{rng.randint(10**9, 10**10 - 1)}"
    html = html_page("Your parcel is on its way",
                     [f"Hello {tn.split()[0]},", f"your {rng.choice(PRODUCTS)} left our warehouse in {rng.choice(CITIES)} today.",
                      f"Tracking number: {track}. <a href=\"https://www.{dom}/track/{track}\">Track your parcel</a>"],
                     f"{shop}, {rng.randint(1, 200)} Market Street", imgs=[f"https://www.{dom}/img/truck.png"])
    # some shops send HTML only: a legitimate hard case
    if rng.random() < 0.4:
        m = text(html, "utf-8", "html")
    else:
        m = alternative(f"Hello {tn.split()[0]},\nyour parcel left our warehouse today.\n"
                        f"Tracking number: {track}\nhttps://www.{dom}/track/{track}\n", html)
    return finish(m, rng, addr(shop, f"shipping@{dom}"), addr(tn, ta), f"Shipped: your order from {shop}")


def ham_password_reset(rng):
    org, dom = rng.choice(COMPANIES)
    tn, ta = person(rng, "local.example")
    tok = f"{rng.getrandbits(128):032x}"
    body = (f"Hello {tn.split()[0]},\n\nsomeone (hopefully you) asked to reset the password of your {org} account.\n"
            f"To choose a new password, open this link within 30 minutes:\n\nhttps://account.{dom}/reset/{tok}\n\n"
            f"If you did not ask for this, ignore this message; your password stays as it is.\n\n{org}\n")
    return finish(text(body, "us-ascii"), rng, addr(org, f"no-reply@{dom}"), addr(tn, ta),
                  f"Reset your {org} password")


def ham_memo_docx(rng):
    fn, fa = person(rng, "local.example")
    m = MIMEMultipart("mixed")
    m.attach(text(f"Dear all,\n\nthe updated travel policy is attached; the main change concerns "
                  f"train travel under {rng.randint(4, 8)} hours.\n\n" + paragraphs(rng, 1)[0] + f"\n\n{fn}\nHR\n", "utf-8"))
    a = MIMEApplication(b"PK\x03\x04" + bytes(rng.getrandbits(8) for _ in range(2000)),
                        "vnd.openxmlformats-officedocument.wordprocessingml.document")
    a.add_header("Content-Disposition", "attachment", filename="travel-policy-2026.docx")
    m.attach(a)
    return finish(m, rng, addr(fn, fa), "all-staff@local.example", "Updated travel policy")


def ham_french(rng):
    fn, fa = person(rng, "societe.example")
    tn, ta = person(rng, "local.example")
    body = (f"Bonjour {tn.split()[0]},\n\nje vous remercie pour votre réponse rapide. Comme convenu, "
            f"nous préparons le devis pour la réunion de {rng.choice(['mardi', 'jeudi', 'vendredi'])} prochain. "
            f"N'hésitez pas à me contacter si vous avez des questions sur les délais.\n\n"
            f"Bien cordialement,\n{fn}\n")
    return finish(text(body, "utf-8"), rng, addr(fn, fa), addr(tn, ta), "Devis pour la réunion — suite", charset="utf-8")


def ham_russian_utf8(rng):
    tn, ta = person(rng, "local.example")
    body = ("Здравствуйте!\n\nСпасибо за письмо. Отчёт за квартал я отправлю завтра утром, "
            "а презентацию — до конца недели. Если будут вопросы по срокам, звоните.\n\n"
            "С уважением,\nОльга Иванова\n")
    return finish(text(body, "utf-8"), rng, addr("Ольга Иванова", "olga.ivanova@kontora.example", "utf-8"),
                  addr(tn, ta), "Отчёт за квартал", charset="utf-8")


def ham_receipt_inline_image(rng):
    org, dom = rng.choice(COMPANIES)
    tn, ta = person(rng, "local.example")
    amt = rng.randint(10, 500)
    rel = MIMEMultipart("related")
    html = html_page("Payment received", [f"Dear {tn.split()[0]},", f"we received your payment of EUR {amt}.00. Thank you.",
                                          "<img src=\"cid:logo@" + dom + "\" alt=\"logo\">"], f"{org} accounts")
    rel.attach(alternative(f"Dear {tn.split()[0]},\nwe received your payment of EUR {amt}.00. Thank you.\n{org} accounts\n", html))
    img = MIMEImage(fake_png(rng), "png")
    img.add_header("Content-ID", f"<logo@{dom}>")
    img.add_header("Content-Disposition", "inline", filename="logo.png")
    rel.attach(img)
    return finish(rel, rng, addr(f"{org} accounts", f"accounts@{dom}"), addr(tn, ta), f"Payment received - thank you")


# ================================================================== spam A

def spam_lottery(rng):
    fn, _ = person(rng)
    mail = f"{fn.split()[0].lower()}{rng.randint(10, 9999)}@{rng.choice(FREEMAIL)}"
    amt = rng.choice(["1,500,000.00", "2,750,000.00", "850,000.00", "4,200,000.00"])
    body = (f"Dear Beneficiary,\n\nWe are pleased to inform you that your email address was selected in the "
            f"{rng.choice(['International', 'Euro', 'Microsoft', 'Google'])} Email Lottery Draw held on "
            f"{rng.choice(WEEKDAYS)}. You have won the sum of USD ${amt} (US DOLLARS).\n\n"
            f"To claim your prize, contact our claims agent {fn} with your full name, address, phone number, "
            f"age and occupation. Keep this winning strictly confidential until your claim is processed.\n\n"
            f"Your Ref No: {rng.choice('ABCDEFG')}{rng.randint(1000, 9999)}/{rng.randint(100, 999)}\n\n"
            f"Congratulations once again!\nMrs. {rng.choice(LAST)}\nLottery Coordinator\n")
    return finish(text(body, "us-ascii"), rng, addr("Lottery Claims Dept", mail), "undisclosed-recipients:;",
                  rng.choice(["CONGRATULATIONS YOU HAVE WON!!!", "Winning Notification", "Your email has won"]),
                  extra=[("Reply-To", f"claims{rng.randint(1, 99)}@{rng.choice(FREEMAIL)}")])


def spam_advance_fee(rng):
    name = f"{rng.choice(['Dr.', 'Barrister', 'Mrs.', 'Prince'])} {rng.choice(FIRST)} {rng.choice(LAST)}"
    mail = f"{rng.choice(FIRST).lower()}.{rng.randint(100, 999)}@{rng.choice(FREEMAIL)}"
    amt = rng.choice(["$10.5 million", "$18,500,000", "US$7.2M", "$25,000,000.00"])
    body = (f"Dear Friend,\n\nI am {name}, a {rng.choice(['bank manager', 'lawyer', 'auditor'])} in "
            f"{rng.choice(['Lagos', 'Accra', 'Abidjan', 'Dakar'])}. I have an urgent and confidential business proposal for you. "
            f"A foreign customer of our bank died in a car accident leaving {amt} in an account with no next of kin.\n\n"
            f"I need your assistance to transfer this fund to your account; you will receive 40% of the total sum. "
            f"This transaction is 100% risk free. Please reply with your full name, phone number and bank details.\n\n"
            f"Yours faithfully,\n{name}\n")
    return finish(text(body, "utf-8"), rng, addr(name, mail), addr("", "info@local.example"),
                  rng.choice(["URGENT BUSINESS PROPOSAL", "Confidential: Partnership", "Assistance needed urgently"]),
                  msgid=rng.random() < 0.5)


def obfuscate(word, rng):
    subs = {"a": "@", "i": "1", "o": "0", "e": "3", "s": "$"}
    out = []
    for c in word:
        if c.lower() in subs and rng.random() < 0.4:
            out.append(subs[c.lower()])
        else:
            out.append(c)
    return "".join(out)


def spam_pharma(rng):
    drug, variants = rng.choice(DRUGS)
    d = rng.choice(variants)
    dom = spam_domain(rng)
    price = rng.choice(["0.99", "1.25", "0.79"])
    html = html_page(f"{d} {rng.choice(['ONLINE', 'NO PRESCRIPTION', 'LOWEST PRICE'])}",
                     [f"Buy <b>{d}</b> from ${price} per pill! {obfuscate('Discreet shipping worldwide', rng)}.",
                      f"<a href=\"http://{dom}/?ref={rng.randint(1000, 9999)}\">{obfuscate('ORDER NOW', rng)}</a> - no doctor visit needed!",
                      f"{obfuscate('Satisfaction guaranteed', rng)}. {rng.choice(['Limited offer', 'Today only', 'Best prices online'])}."],
                     f"<a href=\"http://{dom}/remove\">remove</a>", imgs=[f"http://{dom}/img/{rng.randint(1, 99)}.jpg"])
    if rng.random() < 0.5:
        m = alternative(f"Buy {d} from ${price} per pill! http://{dom}/\n", html)
    else:
        m = text(html, "utf-8", "html")
    return finish(m, rng, addr(f"{rng.choice(['Pharmacy', 'MedStore', 'RxShop'])}", f"sales{rng.randint(1, 999)}@{dom}"),
                  addr("", f"{rng.choice(FIRST).lower()}@local.example"),
                  f"{obfuscate(rng.choice(['Cheap', 'Discount', 'Generic']), rng)} {d} - {rng.randint(60, 90)}% off")


def spam_phishing_ip(rng):
    brand, real, looks = rng.choice(BRANDS)
    tn, ta = person(rng, "local.example")
    ip = bare_ip(rng)
    url = f"http://{ip}/{brand.lower()}/login.php?id={rng.getrandbits(32):x}"
    html = html_page(f"{brand} Account Security",
                     [f"Dear Customer,", f"We detected unusual activity on your {brand} account and have temporarily limited it.",
                      f"To restore full access, please <a href=\"{url}\">verify your account at https://www.{real}/signin</a> within 24 hours.",
                      "Failure to verify will result in permanent suspension."],
                     f"&copy; {brand} Inc. All rights reserved.", imgs=[f"http://{ip}/img/logo.png"])
    m = alternative(f"Dear Customer,\nWe detected unusual activity on your {brand} account.\nVerify: {url}\n", html) \
        if rng.random() < 0.5 else text(html, "utf-8", "html")
    return finish(m, rng, addr(f"{brand} Security", f"security@{rng.choice(looks)}.{rng.choice(['com', 'net', 'info'])}"),
                  addr(tn, ta), rng.choice([f"Your {brand} account has been limited", "Action required: verify your account",
                                            f"Unusual sign-in activity"]))


def spam_phishing_lookalike(rng):
    brand, real, looks = rng.choice(BRANDS)
    tn, ta = person(rng, "local.example")
    fake = f"{rng.choice(looks)}.{rng.choice(['com', 'net', 'support', 'top'])}"
    url = f"https://{fake}/secure/update?session={rng.getrandbits(48):x}"
    body = (f"Dear {ta.split('@')[0]},\n\nYour {brand} payment method has expired and your subscription will be "
            f"cancelled. Update your billing information now to avoid interruption:\n\n{url}\n\n"
            f"Thank you,\nThe {brand} Team\n")
    return finish(text(body, "us-ascii"), rng, addr(f"{brand} Billing", f"billing@{fake}"), addr(tn, ta),
                  f"{brand}: update your payment information")


def spam_casino(rng):
    dom = spam_domain(rng)
    bonus = rng.choice(["$1,000", "200%", "500 free spins", "$500 + 100 spins"])
    html = html_page(f"{rng.choice(['Golden', 'Royal', 'Lucky', 'Vegas'])} Casino",
                     [f"<a href=\"http://{dom}/c?{rng.randint(1, 99999)}\"><img src=\"http://img.{dom}/banner{rng.randint(1, 9)}.jpg\"></a>",
                      f"<font size=5 color=red>WELCOME BONUS {bonus}</font>",
                      f"<a href=\"http://{dom}/play\">PLAY NOW</a> and win BIG tonight!"],
                     f"<a href=\"http://{dom}/unsub\">unsubscribe</a>",
                     imgs=[f"http://img.{dom}/top.gif", f"http://img.{dom}/chips.gif"])
    return finish(text(html, "utf-8", "html"), rng, addr("Casino VIP", f"vip@{dom}"),
                  addr("", f"{rng.choice(FIRST).lower()}@local.example"),
                  f"{rng.choice(['Exclusive', 'VIP', 'Your'])} {bonus} bonus is waiting")


def spam_replica(rng):
    w = rng.choice(WATCHES)
    dom = spam_domain(rng)
    plain = (f"Swiss {w} replica watches - {obfuscate('highest quality', rng)} at 90% discount!\n"
             f"All models: Submariner, Daytona, Seamaster, Navitimer...\nFree shipping, 1 year warranty.\n\n"
             f"Visit http://www.{dom}/ now\n")
    html = html_page(f"{w} REPLICA", [plain.replace("\n", "<br>"), f"<a href=\"http://www.{dom}/\">SHOP NOW</a>"],
                     imgs=[f"http://www.{dom}/w{rng.randint(1, 30)}.jpg"])
    # text and HTML that say different things
    m = alternative(rng.choice(SENTENCES) + "\n", html) if rng.random() < 0.5 else alternative(plain, html)
    return finish(m, rng, addr(f"{w} Store", f"{rng.choice(LAST).lower()}{rng.randint(1000000, 99999999)}@{dom}"),
                  addr("", f"{rng.choice(FIRST).lower()}@local.example"),
                  f"{obfuscate('Replica', rng)} {w} from $199")


def spam_gb2312(rng):
    body = ("尊敬的客户您好！\n\n本公司长期提供各类发票，税点优惠，量大从优。"
            "另有网络推广、群发邮件服务，效果保证。\n\n联系电话：138" + str(rng.randint(10000000, 99999999)) +
            "\n联系人：王经理\n")
    dom = spam_domain(rng)
    return finish(text(body, "gb2312"), rng, addr("王经理", f"service{rng.randint(1, 999)}@{dom}", "gb2312"),
                  addr("", f"{rng.choice(FIRST).lower()}@local.example"), "代开发票 优惠 " + str(rng.randint(1, 99)),
                  charset="gb2312")


# ================================================================== spam B (held out)

def spam_crypto(rng):
    dom = spam_domain(rng)
    pct = rng.choice(["300%", "27% per week", "10x", "450%"])
    fn, _ = person(rng)
    body = (f"Hi,\n\nMy name is {fn} and I made ${rng.randint(12, 95)},{rng.randint(100, 999)} in {rng.randint(2, 8)} weeks "
            f"with a new automated bitcoin trading platform. The AI robot trades for you, returns of {pct} guaranteed.\n\n"
            f"Spots are limited, register now with only $250: https://{dom}/join?aff={rng.randint(100, 9999)}\n\n"
            f"Don't miss this opportunity, it will change your life.\n{fn}\n")
    return finish(text(body, "utf-8"), rng, addr(fn, f"{fn.split()[0].lower()}{rng.randint(1, 99)}@{rng.choice(FREEMAIL)}"),
                  "undisclosed-recipients:;", rng.choice(["I quit my job last month", "Passive income with crypto",
                                                          f"Turn $250 into ${rng.randint(5, 50)},000"]))


def spam_fake_invoice(rng):
    brand, real, looks = rng.choice(BRANDS)
    tn, ta = person(rng, "local.example")
    fake = f"{rng.choice(looks)}-docs.{rng.choice(['com', 'net', 'online'])}"
    inv = rng.randint(10000, 99999)
    html = html_page(f"Invoice {inv}",
                     [f"You have a new invoice (INV-{inv}) of ${rng.randint(300, 4000)}.{rng.randint(10, 99)} due today.",
                      f"<a href=\"https://{fake}/view/INV-{inv}\">View document on {real}</a>",
                      "The document is protected; sign in with your email password to view it."],
                     f"Sent via {brand} Online")
    return finish(text(html, "utf-8", "html"), rng, addr(f"{brand} Online", f"noreply@{fake}"), addr(tn, ta),
                  f"Invoice INV-{inv} is due")


def spam_koi8r(rng):
    dom = spam_domain(rng)
    body = ("Здравствуйте!\n\nКомпания предлагает рассылку рекламы по электронной почте: миллионы адресов, "
            "базы данных клиентов по всей России. Низкие цены, гарантия результата!\n\n"
            f"Звоните: +7 495 {rng.randint(100, 999)}-{rng.randint(10, 99)}-{rng.randint(10, 99)}\nСайт: http://{dom}/\n")
    return finish(text(body, "koi8-r"), rng, addr("Реклама", f"info{rng.randint(1, 999)}@{dom}", "koi8-r"),
                  addr("", f"{rng.choice(FIRST).lower()}@local.example"), "Рассылка рекламы, низкие цены", charset="koi8-r")


def spam_windows1251(rng):
    dom = spam_domain(rng)
    body = ("Уважаемые коллеги!\n\nПриглашаем на семинар «Как уменьшить налоги» — законные схемы оптимизации. "
            f"Стоимость участия {rng.randint(5, 25)} 000 руб.\n\nРегистрация: http://{dom}/seminar\n")
    return finish(text(body, "windows-1251"), rng, addr("Семинары", f"seminar@{dom}", "windows-1251"),
                  addr("", f"{rng.choice(FIRST).lower()}@local.example"), "Семинар: уменьшить налоги", charset="windows-1251")


def spam_dating(rng):
    dom = spam_domain(rng)
    name = rng.choice(["Natasha", "Irina", "Svetlana", "Katya", "Lena"])
    html = html_page(f"{name} sent you a message",
                     [f"<img src=\"http://{dom}/p/{rng.randint(1, 500)}.jpg\">",
                      f"Hi handsome, I am {name}, {rng.randint(21, 29)}, and I live near you. I am lonely tonight...",
                      f"<a href=\"http://{dom}/profile/{rng.randint(1000, 9999)}\">See my private photos</a>"],
                     f"<a href=\"http://{dom}/u\">stop</a>")
    return finish(text(html, "utf-8", "html"), rng, addr(name, f"{name.lower()}{rng.randint(1990, 2005)}@{rng.choice(FREEMAIL)}"),
                  addr("", f"{rng.choice(FIRST).lower()}@local.example"), f"{name} wants to meet you ;)")


def spam_seo(rng):
    fn, _ = person(rng)
    org, dom = rng.choice(COMPANIES)
    body = (f"Hello,\n\nI was checking your website www.{dom} and noticed it is not on the first page of Google "
            f"for important keywords. We can get you guaranteed #1 rankings within {rng.randint(2, 6)} weeks at a very "
            f"affordable price. We also offer backlinks, social media marketing and website redesign.\n\n"
            f"Reply with your phone number and the best time to call, and I will send you a free audit.\n\n"
            f"Regards,\n{fn}\nSenior SEO Consultant\n\nIf you do not wish to receive this, reply with REMOVE.\n")
    return finish(text(body, "us-ascii"), rng, addr(fn, f"{fn.split()[0].lower()}.seo{rng.randint(1, 99)}@{rng.choice(FREEMAIL)}"),
                  f"info@{dom}", rng.choice(["Website ranking proposal", f"Re: {dom}", "Quick question about your site"]))


def spam_mailbox_full(rng):
    tn, ta = person(rng, "local.example")
    ip = bare_ip(rng)
    pct = rng.randint(95, 99)
    html = html_page("Mailbox quota exceeded",
                     [f"Your mailbox {ta} has reached {pct}% of its storage quota.",
                      f"Incoming messages will be rejected. <a href=\"http://{ip}:{rng.choice([8080, 80, 8443])}/owa/upgrade.php?e={ta}\">"
                      f"Click here to upgrade your quota</a> for free.", "IT Help Desk"])
    return finish(text(html, "utf-8", "html"), rng, addr("IT Help Desk", f"admin@{spam_domain(rng)}"), addr(tn, ta),
                  f"Mailbox quota {pct}% full - action required", msgid=rng.random() < 0.5)


def spam_extortion(rng):
    tn, ta = person(rng, "local.example")
    btc = "bc1q" + "".join(rng.choice("023456789acdefghjklmnpqrstuvwxyz") for _ in range(38))
    body = (f"Hello!\n\nI am a hacker who has access to your operating system. I installed malware on your device "
            f"while you visited adult websites and recorded you through your webcam.\n\n"
            f"Transfer ${rng.randint(900, 2500)} in Bitcoin to this wallet: {btc}\n\n"
            f"You have 48 hours. If I do not receive the payment, I will send the video to all your contacts. "
            f"Do not reply to this email.\n")
    return finish(text(body, "utf-8"), rng, addr("", ta), addr(tn, ta), rng.choice(["Your account is hacked", ta, "Payment required"]),
                  date=rng.random() < 0.7)


def spam_loan(rng):
    dom = spam_domain(rng)
    amt = rng.choice(["$5,000", "$15,000", "$50,000"])
    html = html_page("PRE-APPROVED", [f"You are pre-approved for a loan of up to <b>{amt}</b>!",
                                      "No credit check. Bad credit OK. Money in your account within 24 hours.",
                                      f"<a href=\"http://{dom}/apply\">APPLY NOW</a>"],
                     f"<a href=\"http://{dom}/optout\">opt out</a>", imgs=[f"http://{dom}/b.gif"])
    m = alternative(f"You are pre-approved for {amt}! No credit check. http://{dom}/apply\n", html)
    return finish(m, rng, addr("Loan Center", f"approval{rng.randint(100000, 9999999)}@{dom}"),
                  addr("", f"{rng.choice(FIRST).lower()}@local.example"), f"Pre-approved: {amt} today")


def spam_weightloss(rng):
    dom = spam_domain(rng)
    kg = rng.randint(8, 25)
    plain = (f"Lose {kg} kg in {rng.randint(2, 5)} weeks without diet or exercise!\n"
             f"Celebrities use this one weird trick. Doctors hate it.\n{obfuscate('Order your free trial', rng)}: http://{dom}/trial\n")
    return finish(text(plain, "utf-8"), rng, addr("Slim Fast Pro", f"news@{dom}"),
                  addr("", f"{rng.choice(FIRST).lower()}@local.example"), f"Lose {kg}kg fast - {obfuscate('free trial', rng)}")


TEMPLATES = {
    ("A", "ham"): [ham_newsletter, ham_business, ham_reply, ham_list, ham_order, ham_german, ham_attachment],
    ("B", "ham"): [ham_calendar, ham_notification, ham_shipping, ham_password_reset, ham_memo_docx,
                   ham_french, ham_russian_utf8, ham_receipt_inline_image],
    ("A", "spam"): [spam_lottery, spam_advance_fee, spam_pharma, spam_phishing_ip, spam_phishing_lookalike,
                    spam_casino, spam_replica, spam_gb2312],
    ("B", "spam"): [spam_crypto, spam_fake_invoice, spam_koi8r, spam_windows1251, spam_dating, spam_seo,
                    spam_mailbox_full, spam_extortion, spam_loan, spam_weightloss],
}


def received(rng, m, label):
    """The sender's own hop, as mail from the Internet arrives at an MX:
    ham from a client to its domain's submission server; spam half the
    time straight from a bot (no Received), else via a web/ESMTPA hop
    from a bare address.  Addresses are from the documentation ranges."""
    dom = email.utils.parseaddr(str(m["From"]))[1].rpartition("@")[2] or "example.net"
    date = m["Date"] or rdate(rng)
    qid = "".join(rng.choice("0123456789ABCDEF") for _ in range(10))
    if label == "ham":
        return (f"Received: from [10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(2, 254)}] "
                f"(client.lan [192.0.2.{rng.randint(1, 254)}])\n\tby smtp.{dom} (Postfix) with ESMTPSA id {qid}\n"
                f"\tfor <{email.utils.parseaddr(str(m['To']))[1] or 'list@' + dom}>; {date}\n").encode()
    if rng.random() < 0.5:
        return b""
    return (f"Received: from {rng.choice(['User', 'localhost', 'WIN-' + qid[:6], 'pc'])} "
            f"([203.0.113.{rng.randint(1, 254)}])\n\tby {rng.choice(['smtp.', 'mail.', ''])}{dom} with ESMTPA; {date}\n").encode()


def sized(rng, label, size):
    """A text+HTML message of about SIZE bytes: paragraphs of a business
    mail (ham) or of a pharma/replica ad (spam)."""
    tn, ta = person(rng, "local.example")
    paras, html_paras, total = [], [], 0
    while total < size // 2 - 200:
        if label == "ham":
            p = " ".join(rng.sample(SENTENCES, 4))
        else:
            d = rng.choice(rng.choice(DRUGS)[1])
            p = f"Buy {d} and {rng.choice(WATCHES)} replicas at {rng.randint(60, 90)}% off! " + \
                f"{obfuscate('Limited offer, order now', rng)} at http://{spam_domain(rng)}/ - no prescription needed."
        paras.append(p)
        html_paras.append(f"{p}")
        total += len(p) + 8
    if label == "ham":
        fn, fa = person(rng)
        m = alternative(f"Hi {tn.split()[0]},\n\n" + "\n\n".join(paras) + f"\n\n{fn}\n",
                        html_page("Notes", html_paras, fn))
        return finish(m, rng, addr(fn, fa), addr(tn, ta), f"Notes on {rng.choice(TOPICS)}")
    dom = spam_domain(rng)
    m = alternative("\n\n".join(paras) + "\n", html_page("BEST DEALS", html_paras, imgs=[f"http://{dom}/a.jpg"]))
    return finish(m, rng, addr("Deals", f"offer{rng.randint(100000, 999999)}@{dom}"),
                  addr("", ta), f"{obfuscate('Best deals', rng)} {rng.randint(1, 999)}")


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: spam_corpus.py OUTDIR [N_PER_CLASS_PER_HALF]")
    out = sys.argv[1]
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 150
    rng = random.Random(SEED)
    manifest = []

    def write(rel, data, set_, label, tmpl):
        p = os.path.join(out, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
        manifest.append((rel, set_, label, tmpl))

    # SpamAssassin's own samples (the Debian package), and GTUBE
    for fname, label in (("sample-spam.txt", "spam"), ("sample-nonspam.txt", "ham")):
        src = os.path.join(SA_EXAMPLES, fname)
        if os.path.exists(src):
            with open(src, "rb") as f:
                write(f"sa/{fname}", f.read(), "sa", label, fname)
        else:
            print(f"spam_corpus: {src} missing (apt-get install spamassassin)", file=sys.stderr)
    g = text(f"This is a test of the anti-spam setup.\n\n{GTUBE}\n", "us-ascii")
    g = finish(g, rng, addr("Postmaster", "postmaster@example.net"), "test@local.example", "GTUBE test")
    write("sa/gtube.eml", g.as_bytes(), "sa", "spam", "gtube")

    for half in ("A", "B"):
        for label in ("ham", "spam"):
            tmpls = TEMPLATES[(half, label)]
            for i in range(n):
                t = tmpls[i % len(tmpls)]
                m = t(rng)
                write(f"{half}/{label}/{i:04d}.eml", received(rng, m, label) + m.as_bytes(),
                      half, label, t.__name__)

    for size, tag in ((10 * 1024, "10k"), (100 * 1024, "100k")):
        for i in range(10):
            label = "ham" if i % 2 == 0 else "spam"
            m = sized(rng, label, size)
            write(f"speed/{tag}/{i:02d}.eml", received(rng, m, label) + m.as_bytes(), f"speed{tag}", label, "sized")

    with open(os.path.join(out, "manifest.tsv"), "w") as f:
        for row in manifest:
            f.write("\t".join(row) + "\n")
    print(f"spam_corpus: {len(manifest)} messages in {out}")


if __name__ == "__main__":
    main()
