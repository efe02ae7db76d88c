"""GradAttn in Keras 3: attention-routed depth tokens instead of residual shortcuts.

```python
import keras_gradattn
model = keras_gradattn.create_model("gradattn_learned_pe", num_classes=10,
                                    input_shape=(28, 28, 1))
model.compile()
model.fit(images, labels, epochs=10)
```
"""

from keras_gradattn.backend_selection import select_backend

# Before anything imports Keras: see backend_selection.py.
select_backend()

from keras_gradattn import layers  # noqa: E402
from keras_gradattn.models import GradAttnClassifier  # noqa: E402
from keras_gradattn.models import ImageClassifier  # noqa: E402
from keras_gradattn.models import ResNetBackbone  # noqa: E402
from keras_gradattn.models import create_model  # noqa: E402
from keras_gradattn.models import describe_models  # noqa: E402
from keras_gradattn.models import list_models  # noqa: E402
from keras_gradattn.models import register_model  # noqa: E402
from keras_gradattn.training import AdamL2  # noqa: E402
from keras_gradattn.utils.parameters import count_parameters  # noqa: E402

__version__ = "0.1.0"
