"""A plain-Python support agent: the ``openai`` SDK through the daytwo model gateway.

Nothing daytwo-specific but three lines (``init``, ``observe``, ``client``); the
quickstart's "external agent" stage runs it, and it is the README's first example::

    import daytwo.sdk as dt
    from daytwo.sdk.example_agent import answer

    dt.init("http://127.0.0.1:8765", api_key="dt_...", service_name="support-agent")
    print(answer("Where is order A-1001?", model="local/smollm2-135m"))
    dt.flush()
"""

from __future__ import annotations

import daytwo.sdk as dt

__all__ = ["ORDERS", "answer", "lookup_order"]

ORDERS = {"A-1001": "shipped on Monday, arrives Thursday", "A-1002": "waiting for stock"}


@dt.observe(kind="tool")
def lookup_order(order_id: str) -> str:
    """The order's status (a stand-in for your backend)."""
    return ORDERS.get(order_id, "unknown order")


@dt.observe("support-agent", kind="agent")
def answer(question: str, *, model: str = "local/smollm2-135m", session: str | None = None) -> str:
    """Answer a customer question with one tool lookup and one model call."""
    order_id = next((w.strip("?.,!") for w in question.split() if w.startswith("A-")), None)
    facts = f"Order {order_id}: {lookup_order(order_id)}." if order_id else "No order given."
    reply = dt.client(session=session).chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": f"You are a concise support agent. Facts: {facts}"},
            {"role": "user", "content": question},
        ],
        max_tokens=48,
        temperature=0.0,
        seed=7,
    )
    return (reply.choices[0].message.content or "").strip()
