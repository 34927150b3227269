"""`config.profile`: which steps are traced, and bad values (the trace itself is written in
tests/test_object_store.py, through a gs:// workdir)."""
import pytest

from conftest import load_config_with
from ssljax.config import validation
from ssljax.errors import ConfigError
from ssljax.runtime import profiling


def test_the_trace_covers_the_steps_after_the_warm_up_of_this_process(monkeypatch, tmp_path):
  calls = []
  monkeypatch.setattr(profiling.jax.profiler, "start_trace", lambda d: calls.append(("start", d)))
  monkeypatch.setattr(profiling.jax.profiler, "stop_trace", lambda: calls.append(("stop",)))
  trace = profiling.StepTrace(str(tmp_path), first_step=100, after_steps=10, steps=3)
  for step in range(101, 120):
    trace.before(step)
    calls.append(step)
    trace.after(step, None)
  trace.close()  # nothing left running
  start, stop = calls.index(("start", str(tmp_path))), calls.index(("stop",))
  assert calls[start + 1:stop] == [111, 112, 113]
  assert calls.count(("stop",)) == 1


@pytest.mark.parametrize("name,arg", [("demo", "runlocal"), ("probe_demo", "runlocal")])
@pytest.mark.parametrize("field,value", [("profile__steps", -1), ("profile__after_steps", -3)])
def test_a_bad_profile_field_is_one_line(name, arg, field, value):
  config = load_config_with(name, arg, **{field: value})
  check = validation.validate if name == "demo" else validation.validate_probe
  with pytest.raises(ConfigError, match=rf"^{field.replace('__', '.')}={value!r} is invalid: "
                                        "use an integer >= 0"):
    check(config)
