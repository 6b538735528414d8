"""Bad frames are refused, counted by reason, dead-lettered, and the receiver goes on.

One real ``memup scorer`` process (module-scoped, with ``redis.max_frame_bytes=65536`` so
oversized frames are cheap) receives bad frames both ways a peer can reach it: over ZeroMQ
at its segment server, and through Redis as entries of the episodes stream. After every
bad frame a valid request must still be answered and valid episodes still scored.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import msgpack
import numpy as np
import pytest
import redis
import zmq

from common import keys
from common.embedded_redis import EmbeddedRedis
from common.metrics import ScorerMetrics
from common.redis_io import connect
from common.wire import (
    SCHEMA_VERSION,
    EpisodeDone,
    Fragment,
    Segment,
    SegmentRequest,
    decode,
    encode,
)
from scorer.score import ScoringLoop
from scorer.serve import SegmentServer
from tests.integration.pipeline_helpers import (
    ScorerProcess,
    dead_letters,
    group_pending,
    make_config,
    marked,
    play_episodes,
    publish,
    tamper,
    torch_threads,
    wait_for,
)

RUN = "rejects"
LIMIT = 65536
REJECTED = "memup_scorer_rejected_messages_total"
DROPPED = "memup_scorer_episodes_dropped_total"


@dataclass
class Scorer:
    proc: ScorerProcess
    r: redis.Redis
    url: str

    @property
    def config(self):  # type: ignore[no-untyped-def]
        return make_config(RUN, self.url, f"redis.max_frame_bytes={LIMIT}")

    def counts(self, name: str) -> Counter[str]:
        """A counter's value per ``reason`` label, scraped from the process."""
        return Counter({dict(labels)["reason"]: value
                        for (metric, labels), value in self.proc.scrape().items()
                        if metric == name and "reason" in dict(labels)})

    def dead_letter_reasons(self, source: str) -> Counter[str]:
        return Counter(e["reason"].decode() for e in dead_letters(self.r, RUN)
                       if e["source"] == source.encode())


@pytest.fixture(scope="module")
def scorer(redis_server: EmbeddedRedis) -> Iterator[Scorer]:
    # No per-test FLUSHALL here (the redis_client fixture): the process keeps its state.
    r = connect(redis_server.url)
    proc = ScorerProcess(redis_server.url, RUN, 0, [f"redis.max_frame_bytes={LIMIT}"])
    try:
        proc.wait_ready(r)
        env = Scorer(proc, r, redis_server.url)
        publish(r, env.config, play_episodes(env.config, 8, seed=31, prefix="good"))
        wait_for(lambda: len(marked(r, RUN)) == 8, 30, "the first episodes scored",
                 alive=proc.dead)
        yield env
    finally:
        proc.cleanup()
        r.close()


def _dealer(endpoint: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


def _still_serves(scorer: Scorer, sock: zmq.Socket, lane: int) -> None:
    """A valid request for ``lane`` gets its segment (asked again while a dropped connection
    is re-established). Replies only ever answer valid requests: a late one answers an
    earlier lane, never a bad frame."""
    request = encode(SegmentRequest(lane=lane, episode=None, offset=0, credit=1, acks=[]))
    for _ in range(20):
        assert scorer.proc.dead() is None, scorer.proc.dead()
        sock.send(request)
        while sock.poll(500):
            reply = decode(sock.recv(), LIMIT)
            assert isinstance(reply, Segment) and reply.lane <= lane, reply
            if reply.lane == lane:
                return
    raise AssertionError(f"no segment for a valid request after the bad frame (lane {lane})")


def test_segment_server_refuses_bad_frames_and_keeps_serving(scorer: Scorer) -> None:
    endpoint = scorer.r.get(keys.scorer_endpoint_key(RUN, 0)).decode()
    valid = encode(SegmentRequest(lane=0, episode=None, offset=0, credit=1, acks=[]))
    segment_frame = encode(Segment(segment_id="s-1", lane=0, episode="good-0", offset=0,
                                   arrays={"inputs": np.zeros((2, 3), np.float32)},
                                   targets={}, policy_version=0, rollout=2))
    body = msgpack.unpackb(segment_frame)
    body["arrays"]["inputs"]["dtype"] = "object"
    object_dtype = msgpack.packb(body, use_bin_type=True)
    # A valid request padded with an unknown field up to just under the ZeroMQ limit.
    padded = tamper(valid, pad=b"")
    padded = tamper(valid, pad=b"\0" * (LIMIT - len(padded) - 16))
    assert LIMIT - 32 < len(padded) < LIMIT
    cases: list[tuple[str, list[bytes], str]] = [
        ("random bytes", [random.Random(0).randbytes(300)], "malformed"),
        ("truncated frame", [valid[:-3]], "malformed"),
        ("empty frame", [b""], "malformed"),
        ("another schema version", [tamper(valid, v=SCHEMA_VERSION + 1)], "schema_version"),
        ("unknown kind", [tamper(valid, k="bogus")], "unknown_kind"),
        ("object dtype", [object_dtype], "dtype"),
        ("not a request", [encode(EpisodeDone(episode="e", actor="a", length=1, return_=0.0,
                                                policy_version=0, fragments=1))],
         "unexpected_kind"),
        ("two frames", [valid, valid], "malformed"),
        ("just under the size limit", [padded], "malformed"),
    ]
    rejected_before = scorer.counts(REJECTED)
    letters_before = scorer.dead_letter_reasons("segment_server")
    sock = _dealer(endpoint)
    try:
        _still_serves(scorer, sock, lane=0)
        for lane, (_, parts, _) in enumerate(cases, start=1):
            sock.send_multipart(parts)
            _still_serves(scorer, sock, lane)  # the refusal did not stop the server

        # Above the limit ZeroMQ itself drops the connection (MAXMSGSIZE): the server never
        # sees the frame, and a learner that reconnects is served again.
        sock.send(b"\0" * (LIMIT + 1024))
        _still_serves(scorer, sock, lane=len(cases) + 1)
    finally:
        sock.close(0)
    fresh = _dealer(endpoint)
    try:
        _still_serves(scorer, fresh, lane=99)
    finally:
        fresh.close(0)

    expected = Counter(reason for _, _, reason in cases)
    rejected = scorer.counts(REJECTED)
    rejected.subtract(rejected_before)
    assert +rejected == expected
    letters = scorer.dead_letter_reasons("segment_server")
    letters.subtract(letters_before)
    assert +letters == expected
    for entry in dead_letters(scorer.r, RUN):
        assert len(entry["frame"]) <= 64 * 1024 and int(entry["size"]) >= len(entry["frame"])
    assert scorer.proc.dead() is None


def test_bad_episode_entries_are_counted_dead_lettered_and_acked(scorer: Scorer) -> None:
    r, config = scorer.r, scorer.config
    stream = keys.episodes_stream(RUN)
    (frags, done), (_, done2) = play_episodes(config, 2, seed=32, prefix="bad")
    good_frame = encode(done)
    # An episode published in 2 fragments of which only the first made it to Redis.
    split = make_config(RUN, scorer.url, "actor.fragment_steps=8")
    (parts, torn), = play_episodes(split, 1, seed=33, prefix="torn")
    assert torn.fragments >= 2
    r.rpush(keys.fragments_key(RUN, torn.episode), encode(parts[0]))
    # An episode whose fragment list holds a frame that is not msgpack.
    r.rpush(keys.fragments_key(RUN, done2.episode), b"\xc1 not a fragment")
    entries: list[tuple[dict[bytes, bytes], str, str]] = [
        ({keys.STREAM_FIELD: random.Random(1).randbytes(64)}, REJECTED, "malformed"),
        ({b"other": good_frame}, REJECTED, "malformed"),
        ({keys.STREAM_FIELD: tamper(good_frame, v=SCHEMA_VERSION + 1)}, REJECTED, "schema_version"),
        ({keys.STREAM_FIELD: encode(frags[0])}, REJECTED, "malformed"),  # a Fragment, not a done
        ({keys.STREAM_FIELD: tamper(good_frame, pad=b"\0" * LIMIT)}, REJECTED, "too_large"),
        ({keys.STREAM_FIELD: good_frame}, DROPPED, "missing"),  # its fragments never came
        ({keys.STREAM_FIELD: encode(torn)}, DROPPED, "incomplete"),
        ({keys.STREAM_FIELD: encode(done2)}, REJECTED, "malformed"),
    ]
    before = {name: scorer.counts(name) for name in (REJECTED, DROPPED)}
    letters_before = scorer.dead_letter_reasons("episodes")
    for fields, _, _ in entries:
        r.xadd(stream, fields)
    valid = play_episodes(config, 5, seed=34, prefix="after")
    publish(r, config, valid)

    want = {done.episode for _, done in valid}
    wait_for(lambda: want <= marked(r, RUN), 30, "the valid episodes after the bad ones scored",
             alive=scorer.proc.dead)
    wait_for(lambda: group_pending(r, RUN) == 0, 10, "no entry left pending",
             alive=scorer.proc.dead)
    for name in (REJECTED, DROPPED):
        expected = Counter(reason for _, metric, reason in entries if metric == name)
        got = scorer.counts(name)
        got.subtract(before[name])
        assert +got == expected, name
    letters = scorer.dead_letter_reasons("episodes")
    letters.subtract(letters_before)
    assert +letters == Counter(reason for _, _, reason in entries)
    assert not marked(r, RUN) & {done.episode, done2.episode, torn.episode}
    info = r.xinfo_groups(stream)[0]
    assert info["pending"] == 0 and info["last-delivered-id"] == r.xinfo_stream(
        stream)["last-generated-id"]
    assert scorer.proc.dead() is None


def test_wellformed_fragment_of_the_wrong_shape_does_not_kill_the_scoring_loop(
        redis_server: EmbeddedRedis) -> None:
    """A fragment that decodes (the wire checks types, not the task's shapes) but whose
    observations have the wrong width is a bad message like any other: it must be counted,
    dead-lettered and acked, never crash the loop (in ``memup scorer`` an exception kills
    the process, and a restart drains its own pending entries first: a crash loop)."""
    run = "rejects-shape"
    r = connect(redis_server.url)
    config = make_config(run, redis_server.url)
    ((frags, done),) = play_episodes(config, 1, seed=35, prefix="wide")
    f = frags[0]
    wide = Fragment(run=f.run, actor=f.actor, episode=f.episode, index=0, first_step=0,
                    arrays={**f.arrays, "obs": np.zeros((len(f.arrays["obs"]), 7), np.float32)},
                    policy_version=0, final=True)
    assert isinstance(decode(encode(wide)), Fragment)
    valid = play_episodes(config, 3, seed=36, prefix="fine")
    publish(r, config, [([wide], done), *valid])
    metrics = ScorerMetrics()
    loop = ScoringLoop(config, "scorer-0", connect(redis_server.url), metrics, threading.Event())
    try:
        with torch_threads(1):
            wait_for(lambda: loop.tick() >= 0 and len(marked(r, run)) == 3, 20,
                     "the valid episodes scored", interval=0)
    except Exception as exc:  # reported as the failure, with what it leaves behind
        pytest.fail(f"the scoring loop raised {type(exc).__name__}: {str(exc)[:200]}; "
                    f"{group_pending(r, run)} entries stay pending, so a restarted scorer "
                    "meets the same entry again")
    refused = sum(v for (name, _), v in _samples(metrics).items()
                  if name in (REJECTED, DROPPED))
    assert refused == 1
    assert [e["entry"] for e in dead_letters(r, run)]
    assert group_pending(r, run) == 0
    r.close()


def _samples(metrics: ScorerMetrics) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in metrics.registry.collect() for s in family.samples}



def test_stored_episode_of_another_schema_version_does_not_stop_the_segment_server(
        redis_server: EmbeddedRedis) -> None:
    """During a rolling upgrade the replay window still holds marks written by the old
    version: the new server must refuse such an episode (count, dead-letter) and serve
    others, as it does when a learner names that episode, not die on a random pick."""
    run, url = "rejects-stored", redis_server.url
    r = connect(url)
    config = make_config(run, url)
    publish(r, config, play_episodes(config, 1, seed=37, prefix="new"))
    metrics = ScorerMetrics()
    loop = ScoringLoop(config, "scorer-0", connect(url), metrics, threading.Event())
    with torch_threads(1):
        wait_for(lambda: loop.tick() >= 0 and marked(r, run) == {"new-0"}, 20,
                 "the new episode scored", interval=0)
    old = msgpack.packb({"v": 1, "k": "mark", "episode": "old-0"}, use_bin_type=True)
    r.set(keys.mark_key(run, "old-0"), old)
    r.rpush(keys.fragments_key(run, "old-0"), old)
    r.zadd(keys.replay_key(run), {"old-0": 0.0})

    stop = threading.Event()
    server = SegmentServer(config, "scorer-0", connect(url), metrics, stop)
    errors: list[BaseException] = []

    def serve() -> None:
        try:
            server.run()
        except BaseException as exc:  # handed to the assertions below
            errors.append(exc)

    thread = threading.Thread(target=serve, name="segment-server", daemon=True)
    thread.start()
    sock = _dealer(server.endpoint)
    answered = 0
    try:
        for lane in range(16):  # random picks: P(old-0 never picked) = 2**-16
            if not thread.is_alive():
                break
            sock.send(encode(SegmentRequest(lane=lane, episode=None, offset=0, credit=1,
                                            acks=[])))
            if sock.poll(1000):
                reply = decode(sock.recv())
                assert isinstance(reply, Segment) and reply.episode == "new-0"
                answered += 1
        alive = thread.is_alive()
    finally:
        stop.set()
        thread.join(5)
        sock.close(0)
    assert alive and not errors, f"the segment server died: {errors!r}"
    assert answered >= 8  # a request is unanswered only if all 4 picks hit old-0
    assert (metrics.registry.get_sample_value(REJECTED, {"reason": "schema_version"}) or 0) >= 1
    assert any(e["reason"] == b"schema_version" for e in dead_letters(r, run))
    r.close()
